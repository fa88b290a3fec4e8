package retailcrmfake

import (
	"strconv"

	"github.com/callrouter/callrouter/internal/crm"
)

// customerRec is a stored customer.
type customerRec struct {
	id                  int64
	createdAt           string
	firstName, lastName string
	managerID           int64
	phones              []string
	mail                string // as created through the API
	// custom are customFields written through the API.
	custom map[string]string
}

func (c *customerRec) external() string { return "" }

func (c *customerRec) email() string {
	if c.mail != "" {
		return c.mail
	}
	return "customer" + strconv.FormatInt(c.id, 10) + "@example.com"
}

// json is the customer as list, get and created/deleted history records
// show it.
func (c *customerRec) json() customerJSON {
	return customerJSON{
		Type: "customer", ID: c.id, IsContact: false, CreatedAt: c.createdAt, ManagerID: c.managerID,
		Site: Site, Contragent: map[string]string{"contragentType": "individual"}, Tags: []string{},
		CustomFields: map[string]any{}, Segments: []any{},
		FirstName: c.firstName, LastName: c.lastName, Email: c.email(), Phones: phonesJSON(c.phones),
	}
}

// ref is the customer as field-change history records show it.
func (c *customerRec) ref() refJSON {
	return refJSON{ID: c.id, Site: Site}
}

// orderRec is a stored order.
type orderRec struct {
	id                         int64
	number                     string
	createdAt, statusUpdatedAt string
	status                     string
	managerID                  int64
	phones                     []string
	// Set by orders created through the API (and SetUTM).
	externalID string
	orderType  string
	firstName  string
	customer   *customerRec
	utm        crm.UTM
	custom     map[string]string // customFields written through the API
}

func (o *orderRec) external() string { return o.externalID }

func (o *orderRec) phone(i int) string {
	if i < len(o.phones) {
		return o.phones[i]
	}
	return ""
}

func (o *orderRec) extraPhones() []string {
	if len(o.phones) > 2 {
		return o.phones[2:]
	}
	return nil
}

func (o *orderRec) json() orderJSON {
	orderType := o.orderType
	if orderType == "" {
		orderType = "eshop-individual"
	}
	out := orderJSON{
		Slug: o.id, ID: o.id, ExternalID: o.externalID, Number: o.number, OrderType: orderType, OrderMethod: "phone",
		CountryIso: "RU", CreatedAt: o.createdAt, StatusUpdatedAt: o.statusUpdatedAt, FirstName: o.firstName,
		Phone: o.phone(0), AdditionalPhone: o.phone(1), Email: "", ManagerID: o.managerID, Site: Site, Status: o.status,
		Items: []any{}, Contragent: map[string]string{"contragentType": "individual"}, ClientID: o.utm.ClientID,
	}
	if src := (sourceJSON{Source: o.utm.Source, Medium: o.utm.Medium, Campaign: o.utm.Campaign, Keyword: o.utm.Term,
		Content: o.utm.Content}); src != (sourceJSON{}) {
		out.Source = &src
	}
	extra := o.extraPhones()
	switch {
	case o.customer != nil:
		c := o.customer.json()
		c.Phones = append(c.Phones, phonesJSON(extra)...)
		out.Customer = &c
	case len(extra) > 0:
		out.Customer = &customerJSON{Type: "customer", Site: Site, Contragent: map[string]string{"contragentType": "individual"},
			Tags: []string{}, CustomFields: map[string]any{}, Segments: []any{}, Phones: phonesJSON(extra)}
	}
	return out
}

func (o *orderRec) ref() refJSON {
	return refJSON{ID: o.id, Number: o.number, Site: Site}
}

func phonesJSON(ps []string) []phoneJSON {
	out := make([]phoneJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, phoneJSON{Number: p})
	}
	return out
}

// ownerID parses an owner id; 0 (no manager) when empty or not a number.
func ownerID(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// managerValue is how history records show a manager: {"id":N} or null.
func managerValue(id int64) any {
	if id == 0 {
		return nil
	}
	return idJSON{ID: id}
}
