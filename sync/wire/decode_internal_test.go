package wire

import (
	"reflect"
	"testing"
)

// FuzzDecodeAgreesWithStrict checks that Decode's one pass gives, for any input, what
// decodeStrict gives: the same message, or an error with the same text.
func FuzzDecodeAgreesWithStrict(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","protocol":1,"deviceId":"d-1","token":"t","schemaVersion":3,"cursor":"c"}`,
		`{"type":"push","batchId":"b-17","ops":[{"opId":"o1","kind":"upsert","entity":"lesson","id":"i","hlc":"h","fields":{"period":3,"date":"2026-10-12","topic":"分数\"的\\认识","x":[1,{"y":null}]}},{"opId":"o2","kind":"delete","entity":"attendance","id":"j","hlc":"h"}]}`,
		`{"type":"push","batchId":"b","ops":[null]}`, `{"type":"push","batchId":"b","ops":[{}]}`, `{"type":"push","batchId":"b","ops":[]}`,
		`{"type":"push","batchId":"b","ops":[1]}`, `{"type":"push","batchId":"b","ops":{}}`, `{"type":"push","batchId":"b","ops":null}`,
		`{"type":"push","batchId":"b","ops":[{"OPID":"o","Fields":{"a":1}}]}`, `{"type":"push","BatchId":"b","ops":[]}`,
		`{"type":"changes","records":[{"entity":"lesson","id":"i","version":"3","deleted":false,"fields":{"period":3}}],"cursor":"c","more":false}`,
		`{"type":"changes","records":[{}],"cursor":"","more":true}`,
		` { "type" : "pull" , "cursor" : "c" , "limit" : 500 } `, `{"type":"pull"} x`, `{"type":"pull"}}`, `{"type":"pull",}`,
		`{"type":"ping","type":"pong"}`, `{"type":"ping","type":null}`, `{"type":"p\u0069ng"}`, `{"typ\u0065":"ping"}`, `{"type":1}`,
		`{"type":"hello","protocol":1,"deviceId":null,"schemaVersion":1}`, `{"type":"hello","protocol":"1","deviceId":"d","schemaVersion":1}`,
		`{"type":"hello","protocol":1,"deviceId":"d","deviceId":null,"schemaVersion":1}`, `{"type":"dance"}`, `{}`, `null`, `[1]`, ``,
		`{"type":"pull","limit":1e999}`, `{"type":"pull","cursor":"\"}"}`, `{"type":"reset","reason":"a\\"}`, "{\"type\":\"pull\",\"cursor\":\"\xff\"}",
		`{"type":"push","batchId":"b","ops":[{"fields":{"a":1e999}}]}`,
		`{"type":"push","batchId":"b","ops":[{"opId":"a","OPID":"b","Fields":{"x":-1.5e3,"y":[1,{"z":null}],"w":true,"v":null}}],"SchemaVersion":2}`,
		`{"type":"push","batchId":"b","ops":[{"opId":"a","fields":{"x":1},"fields":{"y":2}},{"fields":null,"fields":{"q":"\u00e9\ud83d\ude00"}}]}`,
		`{"type":"push","batchId":"b","ops":[{"opId":"a"}],"ops":[{"kind":"upsert"}]}`, `{"type":"push","batchId":"b","ops":[{"ſields":{},"\u006fpId":"x"}]}`,
		`{"type":"push","batchId":"b","ops":[{"opId":"a\"b","hlc":null,"entity":"lesson"}],"schemaVersion":1.0}`, "{\"type\":\"push\",\"batchId\":\"b\",\"ops\":[{\"id\":\"\xff\xfe\"}]}",
		`{"type":"push","batchId":"b","ops":[{"opId":5}]}`, `{"type":"push","batchId":7,"ops":[]}`, `{"type":"push","batchId":"b","ops":[[]]}`,
		`{"type":"changes","records":[{"entity":"lesson","id":"i","version":"3","deleted":true,"fields":{"period":3,"notes":null}},{"entity":"x","id":"y","deleted":null,"fields":null}],"cursor":"c","more":true}`,
		`{"type":"changes","records":[null],"cursor":"c","more":false}`, `{"type":"changes","records":[{"entity":"e","id":"i","deleted":"no"}],"cursor":"c","more":false}`,
		`{"type":"ack","batchId":"b-17","results":[{"opId":"o1","status":"applied","id":"i","version":"42"},{"opId":"o2","status":"merged","id":"i","canonicalId":"c","lost":["topic","notes"],"restamped":true,"hlc":"h"},{"opId":"o3","status":"rejected","code":"validation_failed","message":"m \"q\"","fields":{"date":"must be a date","period":"x"}},{"opId":"o4","status":"applied","duplicate":true}]}`,
		`{"type":"ack","batchId":"b","results":[{"opId":"o","fields":{"a":null}}]}`, `{"type":"ack","batchId":"b","results":[{"lost":[null]}]}`, `{"type":"ack","batchId":"b","results":[{"lost":null,"fields":null,"duplicate":null}]}`,
		`{"type":"ack","batchId":"b","results":[{"OPID":"o","Lost":["a"],"LOST":["b"]}]}`, `{"type":"ack","batchId":"b","results":[{"fields":{"a":"1","a":"2"},"lost":[1]}]}`, `{"type":"ack","batchId":"b","results":null}`,
		`{"type":"ack","batchId":"b","results":[{"fields":{"\u0061":"x"}}]}`, "{\"type\":\"ack\",\"batchId\":\"b\",\"results\":[{\"fields\":{\"\xff\":\"x\"}}]}",
		`{"type":"changes","records":[],"cursor":null,"more":false,"cursor":"d"}`, `{"type":"changes","Records":[{"Entity":"e","ID":"i","DELETED":true}],"cursor":"c","more":1}`, `{"type":"error","code":"x","message":"m","a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := Decode(data)
		want, wantErr := decodeStrict(data)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%q: error %v, strict %v", data, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %#v, strict %#v", data, got, want)
		}
	})
}
