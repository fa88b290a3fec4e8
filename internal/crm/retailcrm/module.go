package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/callrouter/callrouter/internal/crm"
)

var _ crm.Registrar = (*Source)(nil)

// moduleJSON is an integration module as POST
// /api/v5/integration-modules/{code}/edit takes it (api-client-go
// IntegrationModule).
type moduleJSON struct {
	Code            string `json:"code"`
	IntegrationCode string `json:"integrationCode"`
	Active          bool   `json:"active"`
	Name            string `json:"name"`
	ClientID        string `json:"clientId"`
	BaseURL         string `json:"baseUrl,omitempty"`
	AccountURL      string `json:"accountUrl,omitempty"`
	Integrations    struct {
		Telephony telephonyModuleJSON `json:"telephony"`
	} `json:"integrations"`
}

// telephonyModuleJSON is integrations.telephony (api-client-go Telephony).
type telephonyModuleJSON struct {
	MakeCallURL          string               `json:"makeCallUrl,omitempty"`
	AllowEdit            bool                 `json:"allowEdit"`
	InputEventSupported  bool                 `json:"inputEventSupported"`
	OutputEventSupported bool                 `json:"outputEventSupported"`
	HangupEventSupported bool                 `json:"hangupEventSupported"`
	AdditionalCodes      []additionalCodeJSON `json:"additionalCodes"`
	ExternalPhones       []externalPhoneJSON  `json:"externalPhones"`
}

type additionalCodeJSON struct {
	Code   string `json:"code"`
	UserID string `json:"userId"`
}

type externalPhoneJSON struct {
	SiteCode      string `json:"siteCode,omitempty"`
	ExternalPhone string `json:"externalPhone"`
}

// Register registers callrouter as the account's telephony integration
// module (POST /api/v5/integration-modules/{code}/edit, form field
// integrationModule): active, named "callrouter (<client id>)", with the
// employees' extension codes as additionalCodes and the project's own
// numbers as externalPhones. retailCRM authorises telephony/calls/upload
// and telephony/manager only for a registered module, and lists it among
// the account's integrations. Editing the same code again replaces the
// codes and numbers, so a re-activation re-registers. allowEdit is false:
// the codes come from callrouter's employee mapping, and codes edited in
// retailCRM would be overwritten at the next activation anyway. Codes whose
// user id is not retailCRM's are left out. Errors: those of the CRM call.
func (s *Source) Register(ctx context.Context, r crm.Registration) error {
	m := moduleJSON{Code: s.module, IntegrationCode: s.module, Active: true, Name: "callrouter",
		ClientID: r.ClientID, BaseURL: s.moduleBase}
	if r.ClientID != "" {
		m.Name = "callrouter (" + r.ClientID + ")"
	}
	if m.ClientID == "" {
		m.ClientID = s.module
	}
	t := &m.Integrations.Telephony
	t.AdditionalCodes = []additionalCodeJSON{}
	t.ExternalPhones = []externalPhoneJSON{}
	for _, c := range r.Codes {
		if n, err := strconv.ParseInt(c.UserID, 10, 64); err != nil || n <= 0 {
			continue
		}
		t.AdditionalCodes = append(t.AdditionalCodes, additionalCodeJSON{Code: c.Code, UserID: c.UserID})
	}
	for _, p := range r.ExternalPhones {
		t.ExternalPhones = append(t.ExternalPhones, externalPhoneJSON{SiteCode: s.site, ExternalPhone: e164(p)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: encode integration module: %w", name, err)
	}
	var a envelope
	return s.post(ctx, "/api/v5/integration-modules/"+s.module+"/edit", url.Values{"integrationModule": {string(b)}}, false, &a)
}

type userGroupsAnswer struct {
	envelope
	Pagination pagination `json:"pagination"`
	Groups     []struct {
		Code      string `json:"code"`
		IsManager bool   `json:"isManager"`
	} `json:"groups"`
}

// managerGroups returns the codes of the account's user groups whose
// members are managers (GET /api/v5/user-groups, isManager).
func (s *Source) managerGroups(ctx context.Context) ([]string, error) {
	var out []string
	for page := 1; ; page++ {
		var a userGroupsAnswer
		q := url.Values{"limit": {strconv.Itoa(pageLimit)}, "page": {strconv.Itoa(page)}}
		if err := s.get(ctx, "/api/v5/user-groups", q, false, &a); err != nil {
			return nil, err
		}
		for _, g := range a.Groups {
			if g.IsManager && g.Code != "" {
				out = append(out, g.Code)
			}
		}
		if a.Pagination.last(page) || len(a.Groups) == 0 {
			return out, nil
		}
	}
}

// isAccessDenied reports whether err is retailCRM's 403 for a key that may
// not use the method.
func isAccessDenied(err error) bool {
	var se *crm.StatusError
	return errors.As(err, &se) && se.Status == http.StatusForbidden
}
