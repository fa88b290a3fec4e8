package events

import "github.com/callrouter/callrouter/internal/domain"

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
}

// textsFor returns the texts of a tenant's language, English for one
// callrouter does not know.
func textsFor(lang string) texts {
	switch lang {
	case domain.LangUK:
		return texts{leadTitle: "Дзвінок +%s", formTitle: "Заявка з сайту: %s",
			callBack: "Передзвонити +%s: пропущений дзвінок о %s", followUp: "Опрацювати дзвінок +%s о %s",
			unmapped: "Опрацювати дзвінок +%s о %s: на нього відповіли на лінії %s, до якої не прив'язано жодного співробітника",
			formTask: "Опрацювати заявку з сайту від %s, надіслану о %s"}
	case domain.LangRU:
		return texts{leadTitle: "Звонок +%s", formTitle: "Заявка с сайта: %s",
			callBack: "Перезвонить +%s: пропущенный звонок в %s", followUp: "Обработать звонок +%s в %s",
			unmapped: "Обработать звонок +%s в %s: на него ответили на линии %s, к которой не привязан ни один сотрудник",
			formTask: "Обработать заявку с сайта от %s, отправленную в %s"}
	case domain.LangPL:
		return texts{leadTitle: "Połączenie +%s", formTitle: "Formularz ze strony: %s",
			callBack: "Oddzwonić +%s: nieodebrane połączenie o %s", followUp: "Obsłużyć połączenie +%s o %s",
			unmapped: "Obsłużyć połączenie +%s o %s: odebrane na linii %s, do której nie przypisano żadnego pracownika",
			formTask: "Obsłużyć formularz ze strony od %s wysłany o %s"}
	}
	return texts{leadTitle: "+%s", formTitle: "Website form: %s",
		callBack: "Call back +%s: missed call at %s", followUp: "Follow up +%s: call at %s",
		unmapped: "Follow up +%s: call at %s answered on %s, which no employee is mapped to",
		formTask: "Process the website form of %s sent at %s"}
}
