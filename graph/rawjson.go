package graph

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jiaoliu/jiaoliu"
)

// rawJSON decodes a stored JSON value for a JSON field (nil stays null).
func rawJSON(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode stored json: %w", err)
	}
	return v, nil
}

// parseSerial parses the numeric id of a log row.
func parseSerial(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return 0, jiaoliu.Errorf(jiaoliu.ENOTFOUND, "%q not found", id)
	}
	return n, nil
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
