//go:build tools

// Package tools pins the code generators of the project in go.mod.
package tools

import (
	_ "github.com/99designs/gqlgen"
)
