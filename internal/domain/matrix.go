package domain

import (
	"slices"
	"strings"
)

// Rows of the scenario matrix: the kind of call (or a website form) and
// whether the CRM knows the client (has an open lead or deal with the
// phone).
const (
	RowIncomingAnsweredNew   = "incoming_answered_new"
	RowIncomingAnsweredKnown = "incoming_answered_known"
	RowIncomingMissedNew     = "incoming_missed_new"
	RowIncomingMissedKnown   = "incoming_missed_known"
	RowOutgoingNew           = "outgoing_new"
	RowOutgoingKnown         = "outgoing_known"
	RowForm                  = "form"
)

// What a matrix row may create. Lead and deal both name the CRM's lead
// entity (an amoCRM lead, a Zoho lead, a retailCRM order, a Uspacy lead):
// the admin writes whichever word their CRM uses.
const (
	MatrixLead    = "lead"
	MatrixDeal    = "deal"
	MatrixContact = "contact"
	MatrixCall    = "call"
	MatrixTask    = "task"
)

// MatrixRows are the rows in the order the admin API documents them.
var MatrixRows = []string{RowIncomingAnsweredNew, RowIncomingAnsweredKnown, RowIncomingMissedNew,
	RowIncomingMissedKnown, RowOutgoingNew, RowOutgoingKnown, RowForm}

// Matrix chooses, per row, what a call or form creates in the CRM; an
// empty row creates nothing.
type Matrix map[string][]string

// DefaultMatrix is DESIGN.md's scenario matrix: a new client gets a lead
// (with the contact the CRM needs for it), every call is filed, a missed
// incoming call gets a call-back task; a form makes a contact, a deal and
// a task.
func DefaultMatrix() Matrix {
	return Matrix{
		RowIncomingAnsweredNew:   {MatrixLead, MatrixCall},
		RowIncomingAnsweredKnown: {MatrixCall},
		RowIncomingMissedNew:     {MatrixLead, MatrixCall, MatrixTask},
		RowIncomingMissedKnown:   {MatrixCall, MatrixTask},
		RowOutgoingNew:           {MatrixLead, MatrixCall},
		RowOutgoingKnown:         {MatrixCall},
		RowForm:                  {MatrixContact, MatrixDeal, MatrixTask},
	}
}

// Creates is what one matrix row creates.
type Creates struct {
	Lead, Contact, Call, Task bool
}

// Nothing reports whether the row creates nothing at all.
func (c Creates) Nothing() bool { return c == Creates{} }

// Row returns what row creates; a row the matrix lacks takes its default.
func (m Matrix) Row(row string) Creates {
	ents, ok := m[row]
	if !ok {
		ents = DefaultMatrix()[row]
	}
	var c Creates
	for _, e := range ents {
		switch e {
		case MatrixLead, MatrixDeal:
			c.Lead = true
		case MatrixContact:
			c.Contact = true
		case MatrixCall:
			c.Call = true
		case MatrixTask:
			c.Task = true
		}
	}
	return c
}

// CallRow names the matrix row of a finished call.
func CallRow(outgoing, answered, known bool) string {
	switch {
	case outgoing && known:
		return RowOutgoingKnown
	case outgoing:
		return RowOutgoingNew
	case answered && known:
		return RowIncomingAnsweredKnown
	case answered:
		return RowIncomingAnsweredNew
	case known:
		return RowIncomingMissedKnown
	default:
		return RowIncomingMissedNew
	}
}

// normalize fills the rows the admin left out with their defaults and
// lower-cases the entries, keeping an explicit empty row empty.
func (m *Matrix) normalize() {
	if *m == nil {
		*m = Matrix{}
	}
	d := DefaultMatrix()
	for _, row := range MatrixRows {
		ents, ok := (*m)[row]
		if !ok {
			(*m)[row] = d[row]
			continue
		}
		out := make([]string, 0, len(ents))
		for _, e := range ents {
			out = append(out, strings.ToLower(strings.TrimSpace(e)))
		}
		(*m)[row] = out
	}
}

// validate returns an EINVALID error naming the first unknown row, unknown
// entry or entry listed twice.
func (m Matrix) validate() error {
	for row, ents := range m {
		if !slices.Contains(MatrixRows, row) {
			return Errorf(EINVALID, "matrix.%s: unknown row (use %s)", clipKey(row), strings.Join(MatrixRows, ", "))
		}
		seen := map[string]bool{}
		for i, e := range ents {
			switch e {
			case MatrixLead, MatrixDeal, MatrixContact, MatrixTask:
			case MatrixCall:
				if row == RowForm {
					return Errorf(EINVALID, "matrix.form[%d]: a form makes no call record (use contact, deal, task)", i)
				}
			default:
				return Errorf(EINVALID, "matrix.%s[%d]: unknown entity %q (use lead, deal, contact, call, task, or [] for nothing)", row, i, clipKey(e))
			}
			if seen[e] {
				return Errorf(EINVALID, "matrix.%s[%d]: %q listed twice", row, i, e)
			}
			seen[e] = true
		}
		if seen[MatrixLead] && seen[MatrixDeal] {
			return Errorf(EINVALID, "matrix.%s: lead and deal are the same entity here; list one", row)
		}
	}
	return nil
}

func clipKey(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}
