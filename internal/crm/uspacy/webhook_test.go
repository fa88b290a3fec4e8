package uspacy_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// TestDecoding feeds full records through the webhook, which decodes them
// exactly as lists and Get do, without a round trip.
func TestDecoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, table, entity string
		want                crm.Entity
	}{
		{"owner as a number", "contacts",
			`{"id":5,"title":"A","owner":12,"phone":[{"id":"1","type":"work","value":"+380501234567","main":true,"sort":0}]}`,
			crm.Entity{Kind: domain.KindContact, ID: "5", Name: "A", OwnerID: "12", Phones: []string{"+380501234567"}, Open: true}},
		{"owner as a string, id as a string, sort as a string", "contacts",
			`{"id":"6","title":"B","owner":"13","phone":[{"value":"050 123 45 67","sort":""}]}`,
			crm.Entity{Kind: domain.KindContact, ID: "6", Name: "B", OwnerID: "13", Phones: []string{"050 123 45 67"}, Open: true}},
		{"no owner, name from first and last name, plain string phones", "contacts",
			`{"id":7,"title":"","first_name":"Ivan","last_name":"Franko","owner":null,"phone":["+380671112233",""," +380671112233"]}`,
			crm.Entity{Kind: domain.KindContact, ID: "7", Name: "Ivan Franko", Phones: []string{"+380671112233"}, Open: true}},
		{"owner 0 is nobody, phone null", "companies",
			`{"id":8,"title":"Co","owner":0,"phone":null}`,
			crm.Entity{Kind: domain.KindCompany, ID: "8", Name: "Co", Open: true}},
		{"open lead", "leads",
			`{"id":9,"title":"L","owner":"3","kanban_status":"IN_WORK","phone":[{"value":"1"}]}`,
			crm.Entity{Kind: domain.KindLead, ID: "9", Name: "L", OwnerID: "3", Phones: []string{"1"}, Open: true}},
		{"lead without a status is open", "leads",
			`{"id":10,"title":"L","owner":3,"kanban_status":null,"phone":[]}`,
			crm.Entity{Kind: domain.KindLead, ID: "10", Name: "L", OwnerID: "3", Open: true}},
		{"won lead", "leads",
			`{"id":11,"title":"L","owner":3,"kanban_status":"SUCCESS","phone":[]}`,
			crm.Entity{Kind: domain.KindLead, ID: "11", Name: "L", OwnerID: "3", Open: false}},
		{"converted lead", "leads",
			`{"id":12,"title":"L","owner":3,"kanban_status":"","converted":1,"phone":[]}`,
			crm.Entity{Kind: domain.KindLead, ID: "12", Name: "L", OwnerID: "3", Open: false}},
		{"lost deal, phones from its contacts and companies", "deals",
			`{"id":13,"title":"D","owner":{"id":4},"kanban_status":"fail","contacts":[{"id":1,"phone":[{"value":"+1 1"}]},{"id":2,"phone":[{"value":"+1 2"},{"value":"+1 1"}]}],"companies":[{"id":3,"phone":[{"value":"+1 3"}]}]}`,
			crm.Entity{Kind: domain.KindDeal, ID: "13", Name: "D", OwnerID: "4", Phones: []string{"+1 1", "+1 2", "+1 3"}, Open: false}},
		{"timestamps as text and in milliseconds", "companies",
			`{"id":15,"title":"Co","owner":1,"phone":[],"created_at":1772442000000,"updated_at":"2026-03-02 10:00:00"}`,
			crm.Entity{Kind: domain.KindCompany, ID: "15", Name: "Co", OwnerID: "1", Open: true, UpdatedAt: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}},
		{"one phone as a string", "contacts",
			`{"id":16,"title":"S","owner":1,"phone":"+380 44 000 00 00"}`,
			crm.Entity{Kind: domain.KindContact, ID: "16", Name: "S", OwnerID: "1", Phones: []string{"+380 44 000 00 00"}, Open: true}},
		{"one phone as an object", "companies",
			`{"id":17,"title":"O","owner":1,"phone":{"value":"+1 5","main":true}}`,
			crm.Entity{Kind: domain.KindCompany, ID: "17", Name: "O", OwnerID: "1", Phones: []string{"+1 5"}, Open: true}},
		{"deal with contacts as ids", "deals",
			`{"id":14,"title":"D","owner":4,"kanban_status":"IN_WORK","contacts":[1,2],"created_at":"1772442000"}`,
			crm.Entity{Kind: domain.KindDeal, ID: "14", Name: "D", OwnerID: "4", Open: true, UpdatedAt: time.Unix(1772442000, 0).UTC()}},
	} {
		body := `{"event":{"service":"crm","type":"entity","table_name":"` + tc.table + `","action":"update"},"data":{"entity":` + tc.entity + `}}`
		b, err := e.src.Webhook(ctx(t), "application/json", []byte(body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(b.Entities) != 1 || len(b.Refetch) != 0 {
			t.Errorf("%s: batch %+v, want one entity", tc.name, b)
			continue
		}
		got := b.Entities[0]
		if d := same(got, tc.want); d != "" {
			t.Errorf("%s: %s", tc.name, d)
		}
		if !got.UpdatedAt.Equal(tc.want.UpdatedAt) {
			t.Errorf("%s: updated %v, want %v", tc.name, got.UpdatedAt, tc.want.UpdatedAt)
		}
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ref := func(k domain.EntityKind, id string) crm.Ref { return crm.Ref{Kind: k, ID: id} }
	for _, tc := range []struct {
		name, body string
		want       crm.Batch
	}{
		{"nested event, id only", `{"event":{"service":"crm","type":"entity","table_name":"contacts","action":"update"},"data":{"entity":{"id":5}}}`,
			crm.Batch{Refetch: []crm.Ref{ref(domain.KindContact, "5")}}},
		{"nested event, entity as data", `{"event":{"service":"crm","table_name":"leads","action":"create"},"data":{"id":"6","title":"x"}}`,
			crm.Batch{Refetch: []crm.Ref{ref(domain.KindLead, "6")}}},
		{"lead without kanban_status is read again", `{"event":{"table_name":"leads","action":"update"},"data":{"entity":{"id":7,"owner":1,"phone":[]}}}`,
			crm.Batch{Refetch: []crm.Ref{ref(domain.KindLead, "7")}}},
		{"flat", `{"table_name":"deals","action":"update","id":8}`,
			crm.Batch{Refetch: []crm.Ref{ref(domain.KindDeal, "8")}}},
		{"flat, singular table, actions list", `{"table_name":"company","actions":["create"],"id":"9"}`,
			crm.Batch{Refetch: []crm.Ref{ref(domain.KindCompany, "9")}}},
		{"flat with the full entity", `{"table_name":"contacts","action":"update","entity":{"id":10,"title":"T","owner":"2","phone":[{"value":"+380501234567"}]}}`,
			crm.Batch{Entities: []crm.Entity{{Kind: domain.KindContact, ID: "10", Name: "T", OwnerID: "2", Phones: []string{"+380501234567"}, Open: true}}}},
		{"delete", `{"event":{"service":"crm","type":"entity","table_name":"deals","action":"delete"},"data":{"entity":{"id":11,"owner":1,"contacts":[],"kanban_status":"IN_WORK"}}}`,
			crm.Batch{Deleted: []crm.Ref{ref(domain.KindDeal, "11")}}},
		{"several", `[{"table_name":"contacts","action":"deleted","id":12},{"table_name":"leads","action":"update","id":13}]`,
			crm.Batch{Deleted: []crm.Ref{ref(domain.KindContact, "12")}, Refetch: []crm.Ref{ref(domain.KindLead, "13")}}},
		{"another table", `{"event":{"service":"crm","table_name":"tasks","action":"update"},"data":{"entity":{"id":14}}}`,
			crm.Batch{}},
		{"another service", `{"event":{"service":"tasks","table_name":"contacts","action":"update"},"data":{"entity":{"id":15}}}`,
			crm.Batch{}},
	} {
		got, err := e.src.Webhook(ctx(t), "application/json", []byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}

	for _, bad := range []string{
		``, `not json`, `{"table_name":`, `[]`, `"contacts"`,
		`{"action":"update","id":1}`,
		`{"table_name":"contacts","action":"update"}`,
		`{"table_name":"contacts","action":"update","id":"abc"}`,
		`{"event":"update"}`,
	} {
		_, err := e.src.Webhook(ctx(t), "application/json", []byte(bad))
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Webhook(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestFakeNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	deal := entity(domain.KindDeal, 20008) // closed, owner as a number
	e.fake.Put(deal)
	ref := crm.Ref{Kind: deal.Kind, ID: deal.ID}

	ct, body, ok := e.fake.Notification(ref)
	if !ok {
		t.Fatal("no notification")
	}
	b, err := e.src.Webhook(ctx(t), ct, body)
	if err != nil || len(b.Entities) != 1 || same(b.Entities[0], deal) != "" {
		t.Fatalf("Webhook(%s) = %+v, %v; want %+v", body, b, err, deal)
	}

	e.fake.Delete(ref)
	ct, body, _ = e.fake.Notification(ref)
	b, err = e.src.Webhook(ctx(t), ct, body)
	if err != nil || !reflect.DeepEqual(b.Deleted, []crm.Ref{ref}) {
		t.Fatalf("Webhook(%s) = %+v, %v; want %v deleted", body, b, err, ref)
	}
}
