package graph

import (
	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/graph/model"
)

// MaxComplexity is the largest query cost the API accepts. A list costs its page size
// times the cost of one node, so a page of 500 lessons with a dozen fields and their
// exchange's teacher fits, and a query that nests lists inside lists does not.
const MaxComplexity = 10000

// MaxDepth is the deepest selection the API accepts.
const MaxDepth = 10

// complexity prices list fields by their page size.
func complexity() ComplexityRoot {
	var c ComplexityRoot
	paged := func(child int, _ *model.ListFilter, first *int, _ *string) int {
		n := jiaoliu.DefaultPageSize
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	c.Query.Districts = paged
	c.Query.Zones = paged
	c.Query.SchoolGroups = paged
	c.Query.Schools = paged
	c.Query.Teachers = paged
	c.Query.Deferrals = paged
	c.Query.Exchanges = paged
	c.Query.Lessons = paged
	c.Query.Observations = paged
	c.Query.ResearchActivities = paged
	c.Query.Attendances = paged
	c.Query.MentoringPairs = paged
	c.Query.MentoringActivities = paged
	c.Query.Evaluations = paged
	c.Query.SemesterReports = paged
	c.Query.Policies = paged
	c.Query.AuditLog = func(child int, _ *model.AuditFilter, first *int, _ *string) int {
		n := jiaoliu.DefaultPageSize
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	return c
}
