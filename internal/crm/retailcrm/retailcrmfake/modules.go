package retailcrmfake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Module is an integration module as registered with POST
// /api/v5/integration-modules/{code}/edit (the shape of retailCRM's API
// client, api-client-go IntegrationModule), with the telephony part
// callrouter sends.
type Module struct {
	Code            string `json:"code"`
	IntegrationCode string `json:"integrationCode"`
	Active          bool   `json:"active"`
	Name            string `json:"name"`
	ClientID        string `json:"clientId"`
	BaseURL         string `json:"baseUrl"`
	AccountURL      string `json:"accountUrl"`
	Integrations    struct {
		Telephony *ModuleTelephony `json:"telephony"`
	} `json:"integrations"`
}

// ModuleTelephony is integrations.telephony of a module.
type ModuleTelephony struct {
	MakeCallURL          string `json:"makeCallUrl"`
	AllowEdit            bool   `json:"allowEdit"`
	InputEventSupported  bool   `json:"inputEventSupported"`
	OutputEventSupported bool   `json:"outputEventSupported"`
	HangupEventSupported bool   `json:"hangupEventSupported"`
	AdditionalCodes      []struct {
		Code   string `json:"code"`
		UserID string `json:"userId"`
	} `json:"additionalCodes"`
	ExternalPhones []struct {
		SiteCode      string `json:"siteCode"`
		ExternalPhone string `json:"externalPhone"`
	} `json:"externalPhones"`
}

// errNoTelephony is what the fake answers the telephony methods while no
// active module with integrations.telephony is registered. Unconfirmed:
// the text and status of a real account's refusal.
const errNoTelephony = "Telephony integration is not enabled: register an integration module with integrations.telephony"

// Modules returns the registered integration modules by code, each as last
// sent.
func (s *Server) Modules() map[string]Module {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Module, len(s.modules))
	for k, m := range s.modules {
		out[k] = m
	}
	return out
}

// ModuleEdits returns how many times module code was registered or edited.
func (s *Server) ModuleEdits(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moduleEdits[code]
}

// SetTelephonyRegistered registers an active telephony module without a
// request, for tests of other methods on an account set up before.
func (s *Server) SetTelephonyRegistered() {
	m := Module{Code: "preexisting", IntegrationCode: "preexisting", Active: true, Name: "PBX", ClientID: "x"}
	m.Integrations.Telephony = &ModuleTelephony{}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modules[m.Code] = m
}

// SetUserGroups puts user id into the named groups (codes of UserGroups),
// replacing its groups; users not set are in "manager".
func (s *Server) SetUserGroups(userID string, groups ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userGroups[userID] = slices.Clone(groups)
}

// telephonyOn reports whether an active module has telephony; s.mu is held.
func (s *Server) telephonyOn() bool {
	for _, m := range s.modules {
		if m.Active && m.Integrations.Telephony != nil {
			return true
		}
	}
	return false
}

// editModule is POST /api/v5/integration-modules/{code}/edit: the form
// field integrationModule holds the module as JSON. retailCRM answers 201
// when it creates the module and 200 when it edits it.
func (s *Server) editModule(w http.ResponseWriter, f url.Values, code string) {
	var m Module
	if !field(w, f, "integrationModule", &m) {
		return
	}
	errs := map[string]string{}
	if m.Code != code {
		errs["code"] = "The code must be the one in the address."
	}
	if strings.TrimSpace(m.Name) == "" {
		errs["name"] = "This value should not be blank."
	}
	if strings.TrimSpace(m.ClientID) == "" {
		errs["clientId"] = "This value should not be blank."
	}
	if m.IntegrationCode == "" {
		errs["integrationCode"] = "This value should not be blank."
	}
	if t := m.Integrations.Telephony; t != nil {
		for i, c := range t.AdditionalCodes {
			if c.Code == "" || c.UserID == "" {
				errs["integrations[telephony][additionalCodes]["+strconv.Itoa(i)+"]"] = "code and userId are required."
			} else if _, ok := s.id(c.UserID); !ok {
				errs["integrations[telephony][additionalCodes]["+strconv.Itoa(i)+"][userId]"] = "User not found."
			}
		}
		for i, p := range t.ExternalPhones {
			if digits(p.ExternalPhone) == "" {
				errs["integrations[telephony][externalPhones]["+strconv.Itoa(i)+"]"] = "externalPhone is required."
			}
			if p.SiteCode != "" && p.SiteCode != Site {
				errs["integrations[telephony][externalPhones]["+strconv.Itoa(i)+"][siteCode]"] = "Site not found."
			}
		}
	}
	if len(errs) > 0 {
		fail(w, http.StatusBadRequest, "Errors in the entity format", errs)
		return
	}
	s.mu.Lock()
	_, existed := s.modules[code]
	s.modules[code] = m
	s.moduleEdits[code]++
	s.mu.Unlock()
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	reply(w, status, struct {
		Success bool            `json:"success"`
		Info    json.RawMessage `json:"info"`
	}{true, json.RawMessage(`{}`)})
}

type userGroupJSON struct {
	Name      string `json:"name"`
	Code      string `json:"code"`
	IsManager bool   `json:"isManager"`
}

// listUserGroups is GET /api/v5/user-groups: retailCRM's two standard
// groups, managers and directors.
func (s *Server) listUserGroups(w http.ResponseWriter, q url.Values) {
	limit, page, ok := paging(w, q)
	if !ok {
		return
	}
	all := []userGroupJSON{{Name: "Менеджеры", Code: "manager", IsManager: true}, {Name: "Руководители", Code: "director"}}
	from, to, p := window(len(all), limit, page)
	reply(w, http.StatusOK, struct {
		Success    bool            `json:"success"`
		Pagination paginationJSON  `json:"pagination"`
		Groups     []userGroupJSON `json:"groups"`
	}{true, p, all[from:to]})
}

// groupsOf returns a user's group codes; s.mu is held.
func (s *Server) groupsOf(userID string) []string {
	if g, ok := s.userGroups[userID]; ok {
		return g
	}
	return []string{"manager"}
}
