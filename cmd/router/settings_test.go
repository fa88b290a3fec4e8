package main

import (
	"encoding/json"
	"testing"
)

func TestSettingsBodyListsAndJSON(t *testing.T) {
	body, err := settingsBody([]string{"form_entities=contact, deal", `matrix={"incoming_missed_new":[]}`,
		"form_phone_fields=", "language=uk"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(body)
	want := `{"form_entities":["contact","deal"],"form_phone_fields":[],"language":"uk","matrix":{"incoming_missed_new":[]}}`
	if string(got) != want {
		t.Fatalf("body %s, want %s", got, want)
	}
	if _, err := settingsBody([]string{"call_mapping={deal"}); err == nil {
		t.Fatal("bad JSON accepted")
	}
}
