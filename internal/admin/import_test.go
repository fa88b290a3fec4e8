package admin

import (
	"bufio"
	"strings"
	"testing"

	"github.com/callrouter/callrouter/internal/domain"
)

// collectRows runs a row reader over body and returns the rows it emitted.
func collectRows(read func(*bufio.Reader, *ImportReport, func(importRow) error) error, body string, rep *ImportReport) ([]importRow, error) {
	var rows []importRow
	err := read(bufio.NewReader(strings.NewReader(body)), rep, func(r importRow) error {
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		param, ctype, body, want string
		err                      bool
	}{
		{"csv", "application/json", "{}", FormatCSV, false},
		{"JSONL", "", "phone", FormatJSONL, false},
		{"ndjson", "", "", FormatJSONL, false},
		{"xml", "", "", "", true},
		{"", "text/csv; charset=utf-8", "", FormatCSV, false},
		{"", "application/x-ndjson", "", FormatJSONL, false},
		{"", "", "  \n{\"phone\":1}", FormatJSONL, false},
		{"", "", "phone,owner_crm_user_id", FormatCSV, false},
	}
	for _, tc := range tests {
		got, err := DetectFormat(tc.param, tc.ctype, []byte(tc.body))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("DetectFormat(%q, %q, %q) = %q, %v; want %q, error %v", tc.param, tc.ctype, tc.body, got, err, tc.want, tc.err)
		}
		if err != nil && domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("error code %s, want invalid", domain.ErrorCode(err))
		}
	}
}

func TestReadCSVShapes(t *testing.T) {
	body := "\xef\xbb\xbfPhone;Owner_CRM_User_ID;Name\n" + // Excel: BOM, semicolons, capitalized header
		"067 123 45 67;101;\"Doe; John\"\n" +
		"\n" +
		"\"0501112233;102;broken quote\n"
	var rep ImportReport
	rows, err := collectRows(readCSV, body, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].phone != "067 123 45 67" || rows[0].owner != "101" || rows[0].name != "Doe; John" || rows[0].line != 2 {
		t.Fatalf("rows = %+v", rows)
	}
	if rep.Rejected != 1 || rep.Errors[0].Line != 4 || !strings.HasPrefix(rep.Errors[0].Reason, "csv:") {
		t.Fatalf("report = %+v, want the broken quote on line 4", rep)
	}
}

func TestReadCSVHeaderErrors(t *testing.T) {
	for _, body := range []string{"phone\n1\n", "owner_crm_user_id\n1\n", "\"unterminated\n"} {
		var rep ImportReport
		if _, err := collectRows(readCSV, body, &rep); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("readCSV(%q): err %v, want invalid", body, err)
		}
	}
}

func TestReadJSONLShapes(t *testing.T) {
	body := `{"phone":380671234567,"owner_crm_user_id":101,"entity_id":5,"open":"false"}` + "\n" +
		`{"phone":"0671234567","owner_crm_user_id":"101","open":null}` + "\n" +
		`{"phone":{"x":1},"owner_crm_user_id":"101"}` + "\n" +
		`[1,2]` + "\n" +
		`{"phone":"1","name":` + strings.Repeat(" ", maxLineBytes) + `"x"}` + "\n"
	var rep ImportReport
	rows, err := collectRows(readJSONL, body, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].phone != "380671234567" || rows[0].owner != "101" || rows[0].entity != "5" || rows[0].open != "false" || rows[1].open != "" {
		t.Fatalf("rows = %+v", rows)
	}
	if rep.Rows != 5 || rep.Rejected != 3 {
		t.Fatalf("report = %+v", rep)
	}
	for i, line := range []int{3, 4, 5} {
		if rep.Errors[i].Line != line {
			t.Errorf("error %d on line %d, want %d (%+v)", i, rep.Errors[i].Line, line, rep.Errors)
		}
	}
}

func TestImportRowEntry(t *testing.T) {
	e, err := importRow{phone: "067 123 45 67", owner: "101"}.entry("acme", "UA")
	if err != nil {
		t.Fatal(err)
	}
	if e.Phone != "380671234567" || e.Suffix != "671234567" || e.Kind != domain.KindContact || e.EntityID != "380671234567" || !e.Open {
		t.Fatalf("defaults: %+v", e)
	}
	e, err = importRow{phone: "067 123 45 67", owner: "101"}.entry("acme", "")
	if err != nil || e.Suffix != "671234567" {
		t.Fatalf("no default country: %+v %v; want a national phone with the same suffix key", e, err)
	}
	for _, r := range []importRow{
		{owner: "1"}, {phone: "x", owner: "1"}, {phone: "0671234567"}, {phone: "0671234567", owner: "a b"},
		{phone: "0671234567", owner: "1", kind: "ticket"}, {phone: "0671234567", owner: "1", open: "perhaps"},
		{phone: "0671234567", owner: "1", entity: strings.Repeat("e", 129)},
	} {
		if _, err := r.entry("acme", "UA"); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("row %+v: err %v, want invalid", r, err)
		}
	}
}

func TestReportTruncatesErrorList(t *testing.T) {
	var rep ImportReport
	for i := 0; i < maxReportErrors+5; i++ {
		rep.reject(i+1, "bad")
	}
	if rep.Rejected != maxReportErrors+5 || len(rep.Errors) != maxReportErrors || !rep.ErrorsTruncated {
		t.Fatalf("rejected %d, listed %d, truncated %v", rep.Rejected, len(rep.Errors), rep.ErrorsTruncated)
	}
}
