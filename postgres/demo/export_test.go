package demo

import "github.com/jiaoliu/jiaoliu"

// Ops returns every op of the demo data set in the order of generation, for tests.
func Ops() []jiaoliu.Op {
	ds := build()
	ops := append([]jiaoliu.Op{}, ds.head...)
	for _, job := range ds.jobs {
		ops = append(ops, job...)
	}
	return append(ops, ds.tail...)
}
