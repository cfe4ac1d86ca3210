package graph

import (
	"context"
	"fmt"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
)

// asOfOr returns the day a view judges: the one asked for, or today in China.
func asOfOr(asOf *jiaoliu.Date) jiaoliu.Date {
	if asOf != nil && !asOf.IsZero() {
		return *asOf
	}
	return postgres.Today()
}

// parseYear parses an academicYear argument, as an INVALID error naming it.
func parseYear(s string) (jiaoliu.AcademicYear, error) {
	y, err := jiaoliu.ParseAcademicYear(s)
	if err != nil {
		return "", &jiaoliu.Error{Code: jiaoliu.EINVALID, Message: "invalid input", Fields: map[string]string{"academicYear": "must be an academic year such as 2026-2027"}}
	}
	return y, nil
}

// progressOf loads the progress of an exchange through the request's batch loader: the
// progress of a page of exchanges costs the same few queries as that of one.
func progressOf(ctx context.Context, store *postgres.Store, exchangeID string, asOf jiaoliu.Date) (*jiaoliu.ExchangeProgress, error) {
	ld := loaderFor(ctx, "progress:"+asOf.String(), func(ctx context.Context, ids []string) (map[string]*jiaoliu.ExchangeProgress, error) {
		return store.ExchangeProgress(ctx, ids, asOf)
	})
	v, err := ld.Load(ctx, exchangeID)()
	if err != nil {
		return nil, fmt.Errorf("load progress: %w", err)
	}
	return v, nil
}

// pairProgressOf loads the progress of a mentoring pair through a batch loader.
func pairProgressOf(ctx context.Context, store *postgres.Store, pairID string, asOf jiaoliu.Date) (*jiaoliu.PairProgress, error) {
	ld := loaderFor(ctx, "pairProgress:"+asOf.String(), func(ctx context.Context, ids []string) (map[string]*jiaoliu.PairProgress, error) {
		return store.PairProgress(ctx, ids, asOf)
	})
	v, err := ld.Load(ctx, pairID)()
	if err != nil {
		return nil, fmt.Errorf("load pair progress: %w", err)
	}
	return v, nil
}

// filterEligibility keeps the decisions of one status.
func filterEligibility(list *jiaoliu.EligibilityList, status *jiaoliu.EligibilityStatus) *jiaoliu.EligibilityList {
	if status == nil {
		return list
	}
	kept := list.Teachers[:0:0]
	for _, e := range list.Teachers {
		if e.Status == *status {
			kept = append(kept, e)
		}
	}
	list.Teachers = kept
	return list
}
