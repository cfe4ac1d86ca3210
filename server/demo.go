package main

import (
	"context"
	"fmt"

	"github.com/jiaoliu/jiaoliu"
	"github.com/jiaoliu/jiaoliu/postgres"
	"github.com/jiaoliu/jiaoliu/postgres/demo"
)

// DemoPassword is the password of every demo user (never of the admin).
const DemoPassword = "demo1234"

// loadDemo loads the demo data set and its users once; it reports whether it loaded
// anything.
func loadDemo(ctx context.Context, store *postgres.Store) (bool, error) {
	ctx = jiaoliu.NewContextWithActor(ctx, jiaoliu.SystemActor)
	var users int
	if err := store.DB().GetContext(ctx, &users, `SELECT count(*) FROM users WHERE username = 'teacher'`); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	if err := demo.Load(ctx, store.DB(), store); err != nil {
		return false, err
	}
	if users > 0 {
		return false, nil
	}
	var receiving string
	if err := store.DB().GetContext(ctx, &receiving, `SELECT receiving_school_id::text FROM exchanges WHERE id = $1`, demo.ExchangeFullTimeID); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	for _, u := range []postgres.NewUser{
		{Username: "district", DisplayName: "新密市教育局人事股", Role: jiaoliu.RoleDistrictAdmin, DistrictID: demo.DistrictID},
		{Username: "auditor", DisplayName: "新密市教育局审计", Role: jiaoliu.RoleAuditor, DistrictID: demo.DistrictID},
		{Username: "school", DisplayName: "受援学校教导主任", Role: jiaoliu.RoleSchoolAdmin, SchoolID: receiving},
		{Username: "teacher", DisplayName: "交流教师", Role: jiaoliu.RoleTeacher, TeacherID: demo.TeacherFullTimeID},
		{Username: "yulin", DisplayName: "榆林市教育局人事股", Role: jiaoliu.RoleDistrictAdmin, DistrictID: demo.OtherDistrictID},
	} {
		u.Password = DemoPassword
		if _, err := store.CreateUser(ctx, u); err != nil {
			return false, fmt.Errorf("demo user %s: %w", u.Username, err)
		}
	}
	return true, nil
}
