// Package demo writes a deterministic demonstration data set through the product's one
// write path (jiaoliu.Writer): the district 新密市 with its 2026-2027 policy, 18 schools,
// about 270 teachers, 40 exchanges of 2026-2027 with a semester of lessons, attendance,
// research, observations and reports, a completed cohort of 2025-2026, mentoring pairs
// and evaluations; and a small second district, 榆林市, so that scope rules have
// something outside. Every record goes through Apply, so every rule of the store holds
// for the demo data: a record the store rejects is a bug in this package.
//
// The data are the same in every database: ids are name-based UUIDs (uuid.NewSHA1 over
// a fixed namespace) and content comes from math/rand/v2 with a fixed seed. The
// exported ids name the records that READMEs, tests and demos refer to.
package demo

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/jiaoliu/jiaoliu"
)

// namespace derives every demo id: the same name gives the same id in every database.
var namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/jiaoliu/jiaoliu/postgres/demo"))

// id returns the id of the demo record with a stable name such as "school/北海小学".
func id(name string) string { return uuid.NewSHA1(namespace, []byte(name)).String() }

// SchoolID returns the id of the demo school of that name (one of the 18 schools of
// 新密市 in the domain document, or 榆阳区第一实验小学, 鱼河镇中心小学, 古塔镇小学 or
// 黄家圪崂教学点 of 榆林市). It does not check that the name is a demo school.
func SchoolID(name string) string { return id("school/" + name) }

func teacherID(key string) string  { return id("teacher/" + key) }
func exchangeID(key string) string { return id("exchange/" + key) }

// AcademicYear is the academic year of the demo policies and of most demo exchanges.
const AcademicYear = "2026-2027"

// Well-known ids of the demo data set.
var (
	// DistrictID is 新密市, the demo district (preset CHUANDI).
	DistrictID = id("district/新密市")
	// OtherDistrictID is 榆林市, a small second district (preset YULIN, 4 schools).
	OtherDistrictID = id("district/榆林市")
	// PolicyID is 新密市's policy for 2026-2027; it is written last, so its presence
	// means a complete load.
	PolicyID = id("policy/新密市/" + AcademicYear)
	// OtherPolicyID is 榆林市's policy for 2026-2027.
	OtherPolicyID = id("policy/榆林市/" + AcademicYear)
	// ZoneChengguanID is 城关片区 and ZoneChuandiID 川底片区.
	ZoneChengguanID = id("zone/城关片区")
	ZoneChuandiID   = id("zone/川底片区")
	// GroupID is 双河五小教育集团: main campus 双河五小, branches 胸阳小学 and 柳山小学.
	GroupID = id("group/双河五小教育集团")

	// SchoolShuangheID is 双河五小 (URBAN, QUALITY, main campus of the group).
	SchoolShuangheID = SchoolID("双河五小")
	// SchoolBeihaiID is 北海小学 (URBAN, QUALITY).
	SchoolBeihaiID = SchoolID("北海小学")
	// SchoolXijieID is 西街小学 (URBAN, QUALITY).
	SchoolXijieID = SchoolID("西街小学")
	// SchoolPeiwenID is 培文小学 (URBAN, QUALITY).
	SchoolPeiwenID = SchoolID("培文小学")
	// SchoolChuandiID is 川底中心小学 (TOWN, GENERAL, centre school).
	SchoolChuandiID = SchoolID("川底中心小学")
	// SchoolXionglouID is 熊楼小学 (RURAL, WEAK).
	SchoolXionglouID = SchoolID("熊楼小学")
	// SchoolZhujiagouID is 朱家沟小学 (RURAL, WEAK, remote).
	SchoolZhujiagouID = SchoolID("朱家沟小学")
	// SchoolCaoheID is 曹河教学点 (TEACHING_POINT, WEAK, remote).
	SchoolCaoheID = SchoolID("曹河教学点")
	// SchoolDenggangID is 邓岗教学点 (TEACHING_POINT, WEAK, remote).
	SchoolDenggangID = SchoolID("邓岗教学点")
	// OtherSchoolID is 榆阳区第一实验小学 of 榆林市.
	OtherSchoolID = SchoolID("榆阳区第一实验小学")

	// PrincipalShuangheID is 宋建国, principal of 双河五小 since 2015-09-01.
	PrincipalShuangheID = teacherID("principal-shuanghe")
	// PrincipalChuandiID is 田振兴, principal of 川底中心小学, deferred as a centre-school
	// principal (CENTRE_SCHOOL_PRINCIPAL).
	PrincipalChuandiID = teacherID("principal-chuandi")
	// TeacherFullTimeID is 李秀梅 (双河五小, 语文, county backbone), on ExchangeFullTimeID
	// and mentor of PairID.
	TeacherFullTimeID = teacherID("full-time")
	// TeacherAbsentID is 赵志强 (北海小学, 数学), on ExchangeAbsentID.
	TeacherAbsentID = teacherID("absent")
	// TeacherTurns50ID is 杨国强, male, born 1976-09-01 (exactly 50 on 2026-09-01, so
	// within the male limit of 50), at 西街小学 since 2008 and on no exchange.
	TeacherTurns50ID = teacherID("turns-50")
	// TeacherTurns50FemaleID is 周秀英, female, born 1976-09-01 (50: above the female
	// limit of 45), at 西街小学 since 2004.
	TeacherTurns50FemaleID = teacherID("turns-50-female")
	// TeacherAge49ID is 吴海峰, male, born 1976-09-02 (49 on 2026-09-01), at 培文小学.
	TeacherAge49ID = teacherID("age-49")
	// TeacherSixYearsID is 郑婷, who joined 培文小学 on 2020-09-01: exactly 6 years.
	TeacherSixYearsID = teacherID("six-years")
	// TeacherFiveYearsID is 冯浩, who joined 培文小学 on 2020-09-02: one day short of 6.
	TeacherFiveYearsID = teacherID("five-years")
	// TeacherDeferredID is 韩雪 (双河五小), deferred for pregnancy; see ExchangeDeferredID.
	TeacherDeferredID = teacherID("deferred")
	// TeacherRefusedID is 曹永庆 (西街小学); see ExchangeRefusedID.
	TeacherRefusedID = teacherID("refused")
	// TeacherRepeatID is 邓伟 (北海小学), graded BASIC at the end of his 2025-2026
	// exchange (ExchangeCompletedID) and exchanging again in 2026-2027 (ExchangeRepeatID).
	TeacherRepeatID = teacherID("repeat")
	// MenteeID is 牛梓涵 (朱家沟小学), mentee of TeacherFullTimeID in PairID.
	MenteeID = teacherID("mentee")

	// ExchangeFullTimeID is 李秀梅's FULL_TIME exchange 双河五小 → 朱家沟小学, ACTIVE,
	// with every duty on track and a finalized EXCELLENT semester evaluation.
	ExchangeFullTimeID = exchangeID("full-time")
	// ExchangeAbsentID is 赵志强's FULL_TIME exchange 北海小学 → 熊楼小学, ACTIVE, with 11
	// ABSENT school days in a row (2026-11-02 to 2026-11-16) and a finalized
	// UNQUALIFIED semester evaluation.
	ExchangeAbsentID = exchangeID("absent")
	// ExchangeAbsentTenID is ACTIVE with exactly 10 ABSENT school days in a row from
	// 2026-11-23 (the limit, which does not trigger).
	ExchangeAbsentTenID = exchangeID("absent-ten")
	// ExchangeAbsentYearID is ACTIVE with 16 ABSENT days in the year, never more than 2
	// in a row (above the yearly limit of 15).
	ExchangeAbsentYearID = exchangeID("absent-year")
	// ExchangeBasicID is ACTIVE with a finalized BASIC semester evaluation.
	ExchangeBasicID = exchangeID("basic")
	// ExchangeLessonDeliveryID is a LESSON_DELIVERY exchange 培文小学 → 曹河教学点, ACTIVE.
	ExchangeLessonDeliveryID = exchangeID("delivery")
	// ExchangeSecondmentID is a SECONDMENT (北海小学's vice principal to 东于沟小学), ACTIVE.
	ExchangeSecondmentID = exchangeID("secondment")
	// ExchangeItinerantID is an ITINERANT exchange from 川底中心小学: receiving school
	// 邓岗教学点, lessons also at 曹河教学点 and 谢营教学点, ACTIVE.
	ExchangeItinerantID = exchangeID("itinerant")
	// ExchangeGroupID is a GROUP_INTERNAL exchange 双河五小 → 柳山小学, ACTIVE.
	ExchangeGroupID = exchangeID("group")
	// ExchangePairedID is a PAIRED_SUPPORT exchange 北海小学 → 熊楼小学, ACTIVE.
	ExchangePairedID = exchangeID("paired")
	// ExchangeReverseID is a FULL_TIME exchange the other way, 熊楼小学 → 北海小学
	// (a young volunteer learning at a quality school), ACTIVE.
	ExchangeReverseID = exchangeID("reverse")
	// ExchangeLateID is ACTIVE, planned from 2026-09-01 and reported on 2026-09-10.
	ExchangeLateID = exchangeID("late")
	// ExchangeShortID is an urban-to-rural FULL_TIME exchange planned for one year only
	// (below the preset's 2 years).
	ExchangeShortID = exchangeID("short")
	// ExchangeRepeatID is TeacherRepeatID's second exchange, ACTIVE.
	ExchangeRepeatID = exchangeID("repeat")
	// ExchangeTerminatedID was ACTIVE and TERMINATED at the end of November 2026.
	ExchangeTerminatedID = exchangeID("terminated")
	// ExchangeProposedID is a volunteer's PROPOSED exchange for the spring term 2027.
	ExchangeProposedID = exchangeID("proposed")
	// ExchangeApprovedID is APPROVED for the spring term 2027.
	ExchangeApprovedID = exchangeID("approved")
	// ExchangeNoShowID is PUBLISHED, planned from 2026-09-01, and never reported.
	ExchangeNoShowID = exchangeID("no-show")
	// ExchangeRefusedID was published and REFUSED (拒不交流).
	ExchangeRefusedID = exchangeID("refused")
	// ExchangeDeferredID was proposed and DEFERRED (TeacherDeferredID's pregnancy).
	ExchangeDeferredID = exchangeID("deferred")
	// ExchangeCancelledID was approved and CANCELLED.
	ExchangeCancelledID = exchangeID("cancelled")
	// ExchangeCompletedID is TeacherRepeatID's COMPLETED exchange of 2025-2026, with a
	// finalized END_OF_EXCHANGE evaluation graded BASIC and signed by both schools.
	ExchangeCompletedID = exchangeID("completed")
	// OtherExchangeID is an ACTIVE exchange of 榆林市.
	OtherExchangeID = exchangeID("other-district")

	// PairID is 李秀梅 (mentor) and 牛梓涵 (mentee) at 朱家沟小学, 2026-2027.
	PairID = id("pair/full-time")
)

// Load writes the demo data set through w as the system actor, unless it is already
// there: PolicyID is written last, so Load returns at once when db has it. A load that
// stopped half way is completed by the next call, since every op is an idempotent
// upsert of a fixed id. An op the store rejects fails the load with the store's error.
func Load(ctx context.Context, db *sqlx.DB, w jiaoliu.Writer) error {
	var done bool
	if err := db.GetContext(ctx, &done, `SELECT EXISTS (SELECT 1 FROM policies WHERE id = $1)`, PolicyID); err != nil {
		return fmt.Errorf("load demo: check: %w", err)
	}
	if done {
		return nil
	}
	ctx = jiaoliu.NewContextWithActor(ctx, jiaoliu.SystemActor)
	ds := build()
	if err := applyAll(ctx, w, ds.head); err != nil {
		return fmt.Errorf("load demo: %w", err)
	}
	if err := applyJobs(ctx, w, ds.jobs); err != nil {
		return fmt.Errorf("load demo: %w", err)
	}
	if err := applyAll(ctx, w, ds.tail); err != nil {
		return fmt.Errorf("load demo: %w", err)
	}
	return nil
}

// batchSize is the number of ops per Apply call.
const batchSize = 500

// workers is how many batches are applied at once. The store spends about 16 round
// trips on each new lesson or attendance record; a few concurrent transactions keep the
// client and the server busy while the others wait on the network.
const workers = 4

// applyAll applies ops in order, in atomic batches.
func applyAll(ctx context.Context, w jiaoliu.Writer, ops []jiaoliu.Op) error {
	for len(ops) > 0 {
		n := min(batchSize, len(ops))
		if _, err := w.Apply(ctx, jiaoliu.Batch{Ops: ops[:n], Atomic: true}); err != nil {
			return explain(ops[:n], err)
		}
		ops = ops[n:]
	}
	return nil
}

// applyJobs applies independent lists of ops concurrently, each list in order.
func applyJobs(ctx context.Context, w jiaoliu.Writer, jobs [][]jiaoliu.Op) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan []jiaoliu.Op)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range next {
				if err := applyAll(ctx, w, ops); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for _, ops := range jobs {
		select {
		case next <- ops:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// explain names the op of a failed batch that the entity's own rules reject, if one
// does on its own, so that a bad demo record is easy to find.
func explain(ops []jiaoliu.Op, err error) error {
	for _, op := range ops {
		def := jiaoliu.Entities[op.Entity]
		if def == nil {
			continue
		}
		rec, perr := def.Parse(op.Fields)
		if perr == nil {
			fe := jiaoliu.FieldErrors{}
			if def.CheckRequired(rec, fe); len(fe) > 0 {
				continue // an update of some fields: its rules need the stored record
			}
		}
		if perr == nil && def.Validate != nil {
			def.Defaults(rec)
			fe := jiaoliu.FieldErrors{}
			if verr := def.Validate(nil, rec, fe); verr != nil {
				perr = verr
			} else {
				perr = fe.Err()
			}
		}
		if perr != nil {
			return fmt.Errorf("apply %s %s: %w", op.Entity, op.ID, err)
		}
	}
	return fmt.Errorf("apply %d ops (%s %s … %s %s): %w", len(ops), ops[0].Entity, ops[0].ID,
		ops[len(ops)-1].Entity, ops[len(ops)-1].ID, err)
}
