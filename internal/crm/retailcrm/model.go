package retailcrm

import (
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// timeLayout is how retailCRM writes times ("Y-m-d H:i:s").
const timeLayout = "2006-01-02 15:04:05"

// parseTime reads a retailCRM time as UTC (the account's zone is not in
// the API); zero when absent or malformed.
func parseTime(s string) time.Time {
	t, err := time.ParseInLocation(timeLayout, s, time.UTC)
	if err != nil {
		return time.Time{}
	}
	return t
}

// phone is one entry of a customer's phones.
type phone struct {
	Number string `json:"number"`
}

// customer is the part of a retailCRM customer routing needs. Orders embed
// the same shape as their customer and contact person.
type customer struct {
	ID        int64   `json:"id"`
	CreatedAt string  `json:"createdAt"`
	ManagerID int64   `json:"managerId"`
	FirstName string  `json:"firstName"`
	LastName  string  `json:"lastName"`
	Phones    []phone `json:"phones"`
}

// order is the part of a retailCRM order routing needs.
type order struct {
	ID              int64     `json:"id"`
	Number          string    `json:"number"`
	CreatedAt       string    `json:"createdAt"`
	StatusUpdatedAt string    `json:"statusUpdatedAt"`
	Status          string    `json:"status"`
	ManagerID       int64     `json:"managerId"`
	FirstName       string    `json:"firstName"`
	LastName        string    `json:"lastName"`
	Phone           string    `json:"phone"`
	AdditionalPhone string    `json:"additionalPhone"`
	Customer        *customer `json:"customer"`
	Contact         *customer `json:"contact"`
}

// idString formats a retailCRM id; "" for 0 (no manager).
func idString(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// fullName joins the non-empty parts of a name.
func fullName(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
	}
	return b.String()
}

// phoneSet collects phones as stored, dropping blanks and exact repeats.
type phoneSet []string

func (ps *phoneSet) add(p string) {
	if p = strings.TrimSpace(p); p == "" {
		return
	}
	for _, q := range *ps {
		if q == p {
			return
		}
	}
	*ps = append(*ps, p)
}

func (ps *phoneSet) addAll(c *customer) {
	if c == nil {
		return
	}
	for _, p := range c.Phones {
		ps.add(p.Number)
	}
}

// entity converts a customer into a contact.
func (c *customer) entity() crm.Entity {
	var ps phoneSet
	ps.addAll(c)
	return crm.Entity{
		Kind:      domain.KindContact,
		ID:        idString(c.ID),
		Name:      fullName(c.FirstName, c.LastName),
		Phones:    ps,
		OwnerID:   idString(c.ManagerID),
		Open:      true,
		UpdatedAt: parseTime(c.CreatedAt),
	}
}

// entity converts an order into a deal; open reports whether a status
// code is not final.
func (o *order) entity(open func(status string) bool) crm.Entity {
	var ps phoneSet
	ps.add(o.Phone)
	ps.add(o.AdditionalPhone)
	ps.addAll(o.Customer)
	ps.addAll(o.Contact)
	title := strings.TrimSpace(o.Number)
	if title == "" {
		title = fullName(o.FirstName, o.LastName)
	}
	updated := parseTime(o.CreatedAt)
	if t := parseTime(o.StatusUpdatedAt); t.After(updated) {
		updated = t
	}
	return crm.Entity{
		Kind:      domain.KindDeal,
		ID:        idString(o.ID),
		Name:      title,
		Phones:    ps,
		OwnerID:   idString(o.ManagerID),
		Open:      open(o.Status),
		UpdatedAt: updated,
	}
}
