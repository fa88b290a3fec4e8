package domain

import (
	"reflect"
	"strings"
	"testing"
)

func TestMatrixDefaultsAndEmptyRows(t *testing.T) {
	s := Settings{Matrix: Matrix{RowIncomingMissedNew: {}, RowOutgoingKnown: {" Call ", "TASK"}}}
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := s.Matrix.Row(RowIncomingMissedNew); !c.Nothing() {
		t.Errorf("an empty row creates %+v", c)
	}
	if got := s.Matrix[RowOutgoingKnown]; !reflect.DeepEqual(got, []string{"call", "task"}) {
		t.Errorf("normalized row %q", got)
	}
	if got, want := s.Matrix[RowIncomingMissedKnown], DefaultMatrix()[RowIncomingMissedKnown]; !reflect.DeepEqual(got, want) {
		t.Errorf("a row left out: %q, want the default %q", got, want)
	}
	if c := (Matrix(nil)).Row(RowIncomingMissedNew); c != (Creates{Lead: true, Call: true, Task: true}) {
		t.Errorf("nil matrix (settings stored before the matrix existed): %+v", c)
	}
	if !reflect.DeepEqual(s.FormEntities, s.Matrix[RowForm]) {
		t.Errorf("form_entities %q and the form row %q differ", s.FormEntities, s.Matrix[RowForm])
	}
	// form_entities given sets the form row.
	s.FormEntities = []string{"contact"}
	s.Normalize()
	if c := s.Matrix.Row(RowForm); c != (Creates{Contact: true}) {
		t.Errorf("form row after form_entities: %+v", c)
	}
}

func TestSettingsRefusalsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		set  func(*Settings)
		want string
	}{
		{func(s *Settings) { s.Matrix = Matrix{"incoming": {"lead"}} }, "matrix.incoming"},
		{func(s *Settings) { s.Matrix = Matrix{RowOutgoingNew: {"lead", "opportunity"}} }, "matrix.outgoing_new[1]"},
		{func(s *Settings) { s.Matrix = Matrix{RowOutgoingNew: {"call", "call"}} }, "matrix.outgoing_new[1]"},
		{func(s *Settings) { s.Matrix = Matrix{RowOutgoingNew: {"lead", "deal"}} }, "matrix.outgoing_new"},
		{func(s *Settings) { s.FormEntities = []string{"contact", "call"} }, "matrix.form[1]"},
		{func(s *Settings) { s.Language = "de" }, "language"},
		{func(s *Settings) {
			s.FormMapping = Mapping{"company": {{CRMField: "x", Source: "constant"}}}
		}, "form_mapping.company"},
		{func(s *Settings) {
			s.FormMapping = Mapping{"contact": {{CRMField: "name", Source: "form", Value: "name"}, {CRMField: "", Source: "constant"}}}
		}, "form_mapping.contact[1].crm_field"},
		{func(s *Settings) {
			s.CallMapping = Mapping{"deal": {{CRMField: "f1", Source: "roistat"}}}
		}, "call_mapping.deal[0].source"},
		{func(s *Settings) {
			s.CallMapping = Mapping{"deal": {{CRMField: "f1", Source: "ringostat"}}}
		}, "call_mapping.deal[0].value"},
		{func(s *Settings) { s.FormPhoneFields = make([]string, 30); s.FormPhoneFields[0] = "p" }, ""},
	} {
		s := DefaultSettings()
		tc.set(&s)
		s.Normalize()
		err := s.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("empty names are dropped, not refused: %v", err)
			}
			continue
		}
		if err == nil || ErrorCode(err) != EINVALID || !strings.HasPrefix(ErrorMessage(err), tc.want+":") {
			t.Errorf("want an EINVALID error starting %q, got %v", tc.want, err)
		}
	}
}

func TestMappingResolve(t *testing.T) {
	m := Mapping{MapContact: {
		{CRMField: "name", Source: SourceForm, Value: "name, first-name"},
		{CRMField: "tag", Source: SourceConstant, Value: "Website"},
		{CRMField: "landing", Source: SourceRingostat, Value: "landing"},
		{CRMField: "city", Source: SourceForm, Value: "city"},
	}}
	got := m.Resolve(MapContact, map[string]string{"first-name": " Ivan ", "landing": "https://x.example/a"})
	want := map[string]string{"name": "Ivan", "tag": "Website", "landing": "https://x.example/a"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved %v, want %v", got, want)
	}
	if got := m.Resolve(MapDeal, nil); got != nil {
		t.Errorf("an unmapped entity resolved to %v", got)
	}
}
