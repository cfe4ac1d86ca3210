package jiaoliu

// Filter narrows a list query. DistrictID, SchoolID and TeacherID select the records
// that concern a district, a school or a teacher (for an exchange's lessons: those of
// the exchanges sending from or received by the school); Eq holds exact matches on
// fields of the entity by GraphQL name; From and To bound DateField inclusively.
type Filter struct {
	DistrictID string
	SchoolID   string
	TeacherID  string
	Eq         map[string]any
	DateField  string
	From, To   *Date
	// Search matches the name field by substring, for entities that have one.
	Search string
}

// ListQuery asks for one page of records in a stable order.
type ListQuery struct {
	Filter Filter
	First  int    // page size, 1..MaxPageSize; 0 means DefaultPageSize
	After  string // an opaque cursor from a previous page
	// WithTotal asks for the total count of matching records (an extra query).
	WithTotal bool
	// Columns, when not nil, are the only columns of the records to read besides the id
	// and the list's order (the other fields of the items are zero): a caller that knows
	// which fields it will read, such as a GraphQL selection.
	Columns []string
}

// Page sizes of list queries.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Page is one page of a list query.
type Page[T any] struct {
	Items      []*T
	Cursors    []string
	HasNext    bool
	TotalCount int
}
