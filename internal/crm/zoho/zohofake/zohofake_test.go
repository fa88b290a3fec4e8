package zohofake_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/crm/zoho/zohofake"
	"github.com/callrouter/callrouter/internal/domain"
)

// token obtains an access token the way a client would.
func token(t *testing.T, f *zohofake.Server) string {
	t.Helper()
	var c map[string]string
	if err := json.Unmarshal(f.Creds(), &c); err != nil {
		t.Fatal(err)
	}
	status, body := do(t, http.MethodPost, f.URL()+"/oauth/v2/token?"+url.Values{
		"grant_type": {"refresh_token"}, "client_id": {c["client_id"]}, "client_secret": {c["client_secret"]},
		"refresh_token": {c["refresh_token"]},
	}.Encode(), "", nil)
	var ans struct {
		AccessToken string `json:"access_token"`
		APIDomain   string `json:"api_domain"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	if ans.Error != "" || ans.AccessToken == "" || ans.APIDomain != f.URL() || ans.ExpiresIn != 3600 {
		t.Fatalf("token answer %s", body)
	}
	return ans.AccessToken
}

func do(t *testing.T, method, u, tok string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Zoho-oauthtoken "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// errorOf decodes Zoho's error envelope and checks its shape.
func errorOf(t *testing.T, body []byte) (code, msg string, details map[string]any) {
	t.Helper()
	var e struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Status  string         `json:"status"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Status != "error" || e.Details == nil {
		t.Fatalf("not a Zoho error envelope: %s", body)
	}
	return e.Code, e.Message, e.Details
}

func TestAuth(t *testing.T) {
	f := zohofake.New(t)
	u := f.URL() + "/crm/v8/Contacts?fields=Phone"
	status, body := do(t, http.MethodGet, u, "1000.bogus", nil)
	if code, msg, _ := errorOf(t, body); status != http.StatusUnauthorized || code != "INVALID_TOKEN" || msg != "invalid oauth token" {
		t.Errorf("bad token: %d %s", status, body)
	}
	status, body = do(t, http.MethodGet, u, "", http.Header{"Authorization": {"Bearer x"}})
	if code, _, _ := errorOf(t, body); status != http.StatusUnauthorized || code != "AUTHENTICATION_FAILURE" {
		t.Errorf("bearer scheme: %d %s", status, body)
	}
	tok := token(t, f)
	if status, _ := do(t, http.MethodGet, u, tok, nil); status != http.StatusNoContent {
		t.Errorf("empty module: %d, want 204", status)
	}
	f.ExpireAccessTokens()
	if status, _ := do(t, http.MethodGet, u, tok, nil); status != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", status)
	}
	tok = token(t, f)
	f.Revoke()
	if status, _ := do(t, http.MethodGet, u, tok, nil); status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", status)
	}
	var c map[string]string
	_ = json.Unmarshal(f.Creds(), &c)
	status, body = do(t, http.MethodPost, f.URL()+"/oauth/v2/token?grant_type=refresh_token&client_id="+url.QueryEscape(c["client_id"])+
		"&client_secret="+url.QueryEscape(c["client_secret"])+"&refresh_token="+url.QueryEscape(c["refresh_token"]), "", nil)
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"error":"invalid_code"}` {
		t.Errorf("refresh after revoke: %d %s, want 200 {\"error\":\"invalid_code\"}", status, body)
	}
}

func TestPaginationLimits(t *testing.T) {
	f := zohofake.New(t)
	for i := range 2100 {
		f.Put(crm.Entity{Kind: domain.KindContact, ID: fmt.Sprintf("41508680000%08d", i), Name: "C", Open: true})
	}
	tok := token(t, f)
	base := f.URL() + "/crm/v8/Contacts?fields=Phone,Modified_Time&per_page=200&sort_by=Modified_Time&sort_order=asc"

	status, body := do(t, http.MethodGet, base+"&page=11", tok, nil)
	code, msg, details := errorOf(t, body)
	if status != http.StatusBadRequest || code != "DISCRETE_PAGINATION_LIMIT_EXCEEDED" ||
		msg != "You can only get the first 2000 records without using page_token param" || details["limit"] != float64(2000) {
		t.Errorf("page 11: %d %s", status, body)
	}

	status, body = do(t, http.MethodGet, base+"&page=10", tok, nil)
	var ans struct {
		Data []map[string]any `json:"data"`
		Info struct {
			Page          int     `json:"page"`
			Count         int     `json:"count"`
			MoreRecords   bool    `json:"more_records"`
			NextPageToken *string `json:"next_page_token"`
		} `json:"info"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || status != http.StatusOK {
		t.Fatalf("page 10: %d %s", status, body)
	}
	if ans.Info.Page != 10 || ans.Info.Count != 200 || !ans.Info.MoreRecords || ans.Info.NextPageToken == nil {
		t.Fatalf("page 10 info: %+v", ans.Info)
	}
	if _, ok := ans.Data[0]["Phone"]; !ok || ans.Data[0]["id"] == nil || ans.Data[0]["Full_Name"] != nil {
		t.Errorf("record %v: want id and the fields asked for, nothing else", ans.Data[0])
	}
	next := *ans.Info.NextPageToken

	status, body = do(t, http.MethodGet, base+"&page=1&page_token="+next, tok, nil)
	if code, _, _ := errorOf(t, body); status != http.StatusBadRequest || code != "AMBIGUITY_DURING_PROCESSING" {
		t.Errorf("page and page_token: %d %s", status, body)
	}
	status, body = do(t, http.MethodGet, strings.Replace(base, "asc", "desc", 1)+"&page_token="+next, tok, nil)
	if code, _, _ := errorOf(t, body); status != http.StatusBadRequest || code != "TOKEN_BOUND_DATA_MISMATCH" {
		t.Errorf("token with another sort order: %d %s", status, body)
	}
	status, body = do(t, http.MethodGet, base+"&page_token="+next, tok, nil)
	if err := json.Unmarshal(body, &ans); err != nil || status != http.StatusOK || ans.Info.Count != 100 || ans.Info.MoreRecords {
		t.Errorf("page token: %d %s", status, body)
	}

	status, body = do(t, http.MethodGet, f.URL()+"/crm/v8/Contacts?per_page=200", tok, nil)
	if code, _, details := errorOf(t, body); status != http.StatusBadRequest || code != "REQUIRED_PARAM_MISSING" || details["param_name"] != "fields" {
		t.Errorf("no fields: %d %s", status, body)
	}
	status, body = do(t, http.MethodGet, f.URL()+"/crm/v8/Widgets?fields=Phone", tok, nil)
	if code, _, _ := errorOf(t, body); status != http.StatusBadRequest || code != "INVALID_MODULE" {
		t.Errorf("unknown module: %d %s", status, body)
	}
}

func TestIfModifiedSinceAnd429(t *testing.T) {
	f := zohofake.New(t)
	f.Put(crm.Entity{Kind: domain.KindLead, ID: "1", Name: "L", Open: true})
	tok := token(t, f)
	u := f.URL() + "/crm/v8/Leads?fields=Phone"
	if status, _ := do(t, http.MethodGet, u, tok, http.Header{"If-Modified-Since": {"2999-01-01T00:00:00+00:00"}}); status != http.StatusNotModified {
		t.Errorf("nothing modified: %d, want 304", status)
	}
	if status, _ := do(t, http.MethodGet, u, tok, http.Header{"If-Modified-Since": {"2000-01-01T00:00:00+00:00"}}); status != http.StatusOK {
		t.Errorf("modified: %d, want 200", status)
	}
	f.Inject429(1, 30*time.Second)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Zoho-oauthtoken "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, _, _ := errorOf(t, body); resp.StatusCode != http.StatusTooManyRequests || code != "TOO_MANY_REQUESTS" || resp.Header.Get("Retry-After") != "30" {
		t.Errorf("injected 429: %d %s Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if f.Meter().Count() != 3 {
		t.Errorf("meter counted %d API requests, want 3", f.Meter().Count())
	}
}

// TestLayouts: the field metadata lists the standard layout (Deals without
// a phone), reads asking for a field the layout lacks are refused with
// INVALID_DATA naming it, and a deal Put with phones reaches them through
// its contact.
func TestLayouts(t *testing.T) {
	f := zohofake.New(t)
	tok := token(t, f)
	status, body := do(t, http.MethodGet, f.URL()+"/crm/v8/settings/fields?module=Deals", tok, nil)
	var meta struct {
		Fields []struct {
			APIName  string `json:"api_name"`
			DataType string `json:"data_type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(body, &meta); err != nil || status != http.StatusOK || len(meta.Fields) == 0 {
		t.Fatalf("settings/fields: %d %s", status, body)
	}
	for _, fd := range meta.Fields {
		if fd.DataType == "phone" {
			t.Errorf("Deals have phone field %s in the standard layout", fd.APIName)
		}
	}
	if status, _ := do(t, http.MethodGet, f.URL()+"/crm/v8/settings/fields", tok, nil); status != http.StatusBadRequest {
		t.Errorf("settings/fields without module: %d, want 400", status)
	}
	status, body = do(t, http.MethodGet, f.URL()+"/crm/v8/Deals?fields=Deal_Name,Phone", tok, nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), `"INVALID_DATA"`) || !strings.Contains(string(body), `"api_name":"Phone"`) {
		t.Errorf("Deals?fields=Phone: %d %s, want 400 INVALID_DATA naming Phone", status, body)
	}
	f.Put(crm.Entity{Kind: domain.KindDeal, ID: "d1", Name: "Deal", Phones: []string{"+380501234567"}, OwnerID: "u1", Open: true})
	cid := f.DealContact("d1")
	if cid == "" {
		t.Fatal("a deal Put with phones has no contact")
	}
	status, body = do(t, http.MethodGet, f.URL()+"/crm/v8/Contacts/"+cid+"/Deals?fields=Deal_Name,Owner", tok, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"id":"d1"`) {
		t.Errorf("the contact's related deals: %d %s, want d1", status, body)
	}
	status, body = do(t, http.MethodGet, f.URL()+"/crm/v8/Contacts/search?phone=380501234567&fields=Phone", tok, nil)
	if status != http.StatusOK || !strings.Contains(string(body), cid) {
		t.Errorf("contact search for the deal's phone: %d %s", status, body)
	}
}
