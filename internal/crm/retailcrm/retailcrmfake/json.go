package retailcrmfake

// The answer shapes, field for field as retailCRM's public client tests
// show them (retailcrm/api-client-php tests/src/ResourceGroup).

type errorJSON struct {
	Success  bool              `json:"success"`
	ErrorMsg string            `json:"errorMsg"`
	Errors   map[string]string `json:"errors,omitempty"`
}

type paginationJSON struct {
	Limit          int `json:"limit"`
	TotalCount     int `json:"totalCount"`
	CurrentPage    int `json:"currentPage"`
	TotalPageCount int `json:"totalPageCount"`
}

type phoneJSON struct {
	Number string `json:"number"`
}

type idJSON struct {
	ID int64 `json:"id"`
}

type customerJSON struct {
	Type               string            `json:"type"`
	ID                 int64             `json:"id,omitempty"`
	IsContact          bool              `json:"isContact"`
	CreatedAt          string            `json:"createdAt,omitempty"`
	ManagerID          int64             `json:"managerId,omitempty"`
	Vip                bool              `json:"vip"`
	Bad                bool              `json:"bad"`
	Site               string            `json:"site"`
	Contragent         map[string]string `json:"contragent"`
	Tags               []string          `json:"tags"`
	MarginSumm         float64           `json:"marginSumm"`
	TotalSumm          float64           `json:"totalSumm"`
	AverageSumm        float64           `json:"averageSumm"`
	OrdersCount        int               `json:"ordersCount"`
	CostSumm           float64           `json:"costSumm"`
	CustomFields       map[string]any    `json:"customFields"`
	PersonalDiscount   float64           `json:"personalDiscount"`
	CumulativeDiscount float64           `json:"cumulativeDiscount"`
	Segments           []any             `json:"segments"`
	FirstName          string            `json:"firstName,omitempty"`
	LastName           string            `json:"lastName,omitempty"`
	Email              string            `json:"email"`
	Phones             []phoneJSON       `json:"phones"`
}

type orderJSON struct {
	Slug            int64             `json:"slug"`
	ID              int64             `json:"id"`
	ExternalID      string            `json:"externalId,omitempty"`
	Number          string            `json:"number"`
	OrderType       string            `json:"orderType"`
	OrderMethod     string            `json:"orderMethod"`
	CountryIso      string            `json:"countryIso"`
	CreatedAt       string            `json:"createdAt"`
	StatusUpdatedAt string            `json:"statusUpdatedAt"`
	Summ            float64           `json:"summ"`
	TotalSumm       float64           `json:"totalSumm"`
	FirstName       string            `json:"firstName,omitempty"`
	LastName        string            `json:"lastName,omitempty"`
	Phone           string            `json:"phone,omitempty"`
	AdditionalPhone string            `json:"additionalPhone,omitempty"`
	Email           string            `json:"email"`
	Call            bool              `json:"call"`
	Expired         bool              `json:"expired"`
	ManagerID       int64             `json:"managerId,omitempty"`
	Customer        *customerJSON     `json:"customer,omitempty"`
	Contragent      map[string]string `json:"contragent"`
	Site            string            `json:"site"`
	Status          string            `json:"status"`
	StatusComment   string            `json:"statusComment"`
	Source          *sourceJSON       `json:"source,omitempty"`
	ClientID        string            `json:"clientId,omitempty"`
	Items           []any             `json:"items"`
}

// sourceJSON is an order's marketing source (UTM).
type sourceJSON struct {
	Source   string `json:"source,omitempty"`
	Medium   string `json:"medium,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	Keyword  string `json:"keyword,omitempty"`
	Content  string `json:"content,omitempty"`
}

// taskJSON is a task as /api/v5/tasks lists it.
type taskJSON struct {
	ID            int64     `json:"id"`
	Text          string    `json:"text"`
	Commentary    string    `json:"commentary,omitempty"`
	Datetime      string    `json:"datetime,omitempty"`
	CreatedAt     string    `json:"createdAt"`
	Complete      bool      `json:"complete"`
	Performer     int64     `json:"performer,omitempty"`
	PerformerType string    `json:"performerType"`
	Phone         string    `json:"phone,omitempty"`
	Order         *refJSON  `json:"order,omitempty"`
	Customer      *taskCust `json:"customer,omitempty"`
}

// taskCust is how a task names its customer.
type taskCust struct {
	Type string `json:"type"`
	ID   int64  `json:"id"`
	Site string `json:"site"`
}

// refJSON is how field-change history records name their entity.
type refJSON struct {
	ID     int64  `json:"id"`
	Number string `json:"number,omitempty"`
	Site   string `json:"site"`
}

type apiKeyJSON struct {
	Current bool `json:"current"`
}

type historyJSON struct {
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	Created   bool        `json:"created,omitempty"`
	Deleted   bool        `json:"deleted,omitempty"`
	Source    string      `json:"source"`
	User      *idJSON     `json:"user,omitempty"`
	Field     string      `json:"field"`
	APIKey    *apiKeyJSON `json:"apiKey,omitempty"`
	OldValue  any         `json:"oldValue"`
	NewValue  any         `json:"newValue"`
	Customer  any         `json:"customer,omitempty"`
	Order     any         `json:"order,omitempty"`
}

type telephonyManagerJSON struct {
	ID        int64  `json:"id"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email,omitempty"`
	Code      string `json:"code,omitempty"`
}

type telephonyCustomerJSON struct {
	ID        int64       `json:"id"`
	FirstName string      `json:"firstName,omitempty"`
	LastName  string      `json:"lastName,omitempty"`
	Email     string      `json:"email"`
	Phones    []phoneJSON `json:"phones"`
}

type telephonyJSON struct {
	Success  bool                   `json:"success"`
	Manager  *telephonyManagerJSON  `json:"manager,omitempty"`
	Customer *telephonyCustomerJSON `json:"customer,omitempty"`
	Links    map[string]string      `json:"links"`
}

type groupJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Code string `json:"code"`
}

type userJSON struct {
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	Active    bool        `json:"active"`
	Email     string      `json:"email"`
	FirstName string      `json:"firstName,omitempty"`
	LastName  string      `json:"lastName,omitempty"`
	Status    string      `json:"status"`
	Online    bool        `json:"online"`
	IsAdmin   bool        `json:"isAdmin"`
	IsManager bool        `json:"isManager"`
	Groups    []groupJSON `json:"groups"`
}

type statusJSON struct {
	Name     string `json:"name"`
	Code     string `json:"code"`
	Active   bool   `json:"active"`
	Ordering int    `json:"ordering"`
	Group    string `json:"group"`
}
