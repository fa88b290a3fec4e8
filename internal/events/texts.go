package events

import (
	"fmt"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/crm"
	"github.com/callrouter/callrouter/internal/domain"
)

// texts are what callrouter writes into the CRM in one language. Each
// takes the client's number (E.164 digits) first; call texts the call's
// time second.
type texts struct {
	// leadTitle titles a call's lead. English keeps the bare number, as
	// callrouter always did.
	leadTitle string
	// formTitle titles a form's deal.
	formTitle string
	callBack  string
	followUp  string
	// unmapped is the default owner's task for a call answered on a line no
	// employee is mapped to; the line comes third.
	unmapped string
	// formTask is the task a form makes: number or e-mail, then the time.
	formTask string
	// call are the words of a call record.
	call callWords
}

// callWords are the words of a call record (crm.CallTexts) in one language.
type callWords struct {
	// in, out and missed title the record; each takes the client's number.
	in, out, missed string
	// answered, missedResult, busy and noConnection are the outcomes.
	answered, missedResult, busy, noConnection string
	// The labels of the note's lines.
	phone, line, disposition, talk, wait, recording, callID string
}

// textsFor returns the texts of a tenant's language, English for one
// callrouter does not know.
func textsFor(lang string) texts {
	switch lang {
	case domain.LangUK:
		return texts{leadTitle: "Дзвінок +%s", formTitle: "Заявка з сайту: %s",
			callBack: "Передзвонити +%s: пропущений дзвінок о %s", followUp: "Опрацювати дзвінок +%s о %s",
			unmapped: "Опрацювати дзвінок +%s о %s: на нього відповіли на лінії %s, до якої не прив'язано жодного співробітника",
			formTask: "Опрацювати заявку з сайту від %s, надіслану о %s",
			call: callWords{in: "Вхідний дзвінок +%s", out: "Вихідний дзвінок +%s", missed: "Пропущений дзвінок +%s",
				answered: "відповіли", missedResult: "пропущений", busy: "зайнято", noConnection: "немає з'єднання",
				phone: "Телефон", line: "Лінія", disposition: "Статус", talk: "Тривалість розмови", wait: "Очікування",
				recording: "Запис", callID: "ID дзвінка в АТС"}}
	case domain.LangRU:
		return texts{leadTitle: "Звонок +%s", formTitle: "Заявка с сайта: %s",
			callBack: "Перезвонить +%s: пропущенный звонок в %s", followUp: "Обработать звонок +%s в %s",
			unmapped: "Обработать звонок +%s в %s: на него ответили на линии %s, к которой не привязан ни один сотрудник",
			formTask: "Обработать заявку с сайта от %s, отправленную в %s",
			call: callWords{in: "Входящий звонок +%s", out: "Исходящий звонок +%s", missed: "Пропущенный звонок +%s",
				answered: "отвечен", missedResult: "пропущен", busy: "занято", noConnection: "нет соединения",
				phone: "Телефон", line: "Линия", disposition: "Статус", talk: "Длительность разговора", wait: "Ожидание",
				recording: "Запись", callID: "ID звонка в АТС"}}
	case domain.LangPL:
		return texts{leadTitle: "Połączenie +%s", formTitle: "Formularz ze strony: %s",
			callBack: "Oddzwonić +%s: nieodebrane połączenie o %s", followUp: "Obsłużyć połączenie +%s o %s",
			unmapped: "Obsłużyć połączenie +%s o %s: odebrane na linii %s, do której nie przypisano żadnego pracownika",
			formTask: "Obsłużyć formularz ze strony od %s wysłany o %s",
			call: callWords{in: "Połączenie przychodzące +%s", out: "Połączenie wychodzące +%s", missed: "Nieodebrane połączenie +%s",
				answered: "odebrane", missedResult: "nieodebrane", busy: "zajęte", noConnection: "brak połączenia",
				phone: "Telefon", line: "Linia", disposition: "Status", talk: "Czas rozmowy", wait: "Oczekiwanie",
				recording: "Nagranie", callID: "ID połączenia w centrali"}}
	}
	return texts{leadTitle: "+%s", formTitle: "Website form: %s",
		callBack: "Call back +%s: missed call at %s", followUp: "Follow up +%s: call at %s",
		unmapped: "Follow up +%s: call at %s answered on %s, which no employee is mapped to",
		formTask: "Process the website form of %s sent at %s",
		call: callWords{in: "Incoming call +%s", out: "Outgoing call +%s", missed: "Missed call +%s",
			answered: "answered", missedResult: "missed", busy: "busy", noConnection: "no connection",
			phone: "Phone", line: "Line", disposition: "Disposition", talk: "Talk time", wait: "Wait",
			recording: "Recording", callID: "PBX call id"}}
}

// callTexts words a call record: its subject, outcome and note. The
// outcome follows amoCRM's call_status: answered, busy, no connection
// (FAILED, CONGESTION, CHANUNAVAIL), else missed, with the PBX's
// disposition in brackets where it says more.
func (w callWords) callTexts(c Call, number string) crm.CallTexts {
	var t crm.CallTexts
	switch {
	case c.Outgoing:
		t.Subject = fmt.Sprintf(w.out, number)
	case c.Answered:
		t.Subject = fmt.Sprintf(w.in, number)
	default:
		t.Subject = fmt.Sprintf(w.missed, number)
	}
	d := c.Disposition
	switch {
	case c.Answered:
		t.Result = w.answered
	case d == "BUSY":
		t.Result = w.busy
	case d == "FAILED" || d == "CONGESTION" || d == "CHANUNAVAIL":
		t.Result = w.noConnection + " (" + d + ")"
	case d == "":
		t.Result = w.missedResult
	default:
		t.Result = w.missedResult + " (" + d + ")"
	}
	var b strings.Builder
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, v)
		}
	}
	line(w.phone, "+"+number)
	line(w.line, c.Line)
	line(w.disposition, d)
	if c.Outgoing || c.Answered {
		line(w.talk, c.Talk.Round(time.Second).String())
	}
	if c.Wait > 0 {
		line(w.wait, c.Wait.Round(time.Second).String())
	}
	line(w.recording, c.Recording)
	line(w.callID, c.UniqueID)
	t.Note = strings.TrimSpace(b.String())
	return t
}
