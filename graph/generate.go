// Package graph is the GraphQL adapter: thin resolvers that translate GraphQL to the
// store's service calls and back, dataloaders, and the error presenter.
package graph

//go:generate go run ../internal/gen/inputs inputs.graphql
//go:generate sh -c "cd .. && go run ./internal/gen/gqlgen"
