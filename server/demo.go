package main

import (
	"context"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/postgres/demo"
)

// loadDemo loads the demo data set once; it reports whether it loaded anything.
func loadDemo(ctx context.Context, store *postgres.Store) (bool, error) {
	ctx = jiaoliu.NewContextWithActor(ctx, jiaoliu.SystemActor)
	return true, demo.Load(ctx, store.DB(), store)
}
