package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/callrouter/callrouter/internal/adminclient"
)

// adminOpts holds the value of every flag a `router admin` subcommand may
// take; each subcommand's flag set registers only its own (adminCmd.flags)
// besides the common --url, --token and -o.
type adminOpts struct {
	url, token, output                          string
	name, sip, phone, email, note, kind, format string
	scope, state, caller, key, baseURL          string
	confirm, days                               string
	apiKey, apiSecret                           string
	limit                                       int
	resend                                      bool
	grace                                       time.Duration
}

// adminFlags registers one subcommand flag, by name, on a flag set.
var adminFlags = map[string]func(fs *flag.FlagSet, o *adminOpts){
	"confirm": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.confirm, "confirm", "", "the tenant id again, to delete it")
	},
	"days": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.days, "days", "", "days of the routing report, today included: 1 to 90 (default 7)")
	},
	"name":  func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.name, "name", "", "display name") },
	"sip":   func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.sip, "sip", "", "SIP login (wins over --phone)") },
	"phone": func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.phone, "phone", "", "phone number") },
	"email": func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.email, "email", "", "e-mail") },
	"note":  func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.note, "note", "", "note") },
	"kind":  func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.kind, "kind", "", "line (default) or client") },
	"format": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.format, "format", "", "csv or jsonl (default: from the file name)")
	},
	"limit": func(fs *flag.FlagSet, o *adminOpts) { fs.IntVar(&o.limit, "limit", 50, "entries") },
	"resend": func(fs *flag.FlagSet, o *adminOpts) {
		fs.BoolVar(&o.resend, "resend", false, "replay the call events that waited")
	},
	"grace": func(fs *flag.FlagSet, o *adminOpts) {
		fs.DurationVar(&o.grace, "grace", 24*time.Hour, "how long the replaced secret keeps working (at most 720h)")
	},
	"scope": func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.scope, "scope", "", "read or admin") },
	"state": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.state, "state", "", "waiting, done, failed or dropped")
	},
	"caller": func(fs *flag.FlagSet, o *adminOpts) { fs.StringVar(&o.caller, "caller", "", "the client's number") },
	"key": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.key, "key", "", "Ringostat Auth-key, or @FILE (ROUTER_RINGOSTAT_KEY)")
	},
	"api-key": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.apiKey, "api-key", "", "SALESmanago API key, or @FILE (ROUTER_SALESMANAGO_API_KEY)")
	},
	"api-secret": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.apiSecret, "api-secret", "", "SALESmanago API secret, or @FILE (ROUTER_SALESMANAGO_API_SECRET)")
	},
	"base-url": func(fs *flag.FlagSet, o *adminOpts) {
		fs.StringVar(&o.baseURL, "base-url", "", "Ringostat API base URL (default https://api.ringostat.net)")
	},
}

// adminCmd is one `router admin` subcommand.
type adminCmd struct {
	name     string   // as typed: "tenants", "token create"
	args     string   // its positional arguments, for usage
	min, max int      // how many positional arguments it takes; max -1: any
	flags    []string // its own flags, by adminFlags name
	help     string   // one line, for the list
	more     string   // details shown by its -h
	// columns, for a subcommand answering a list, are the fields its
	// table shows; nil for one answering an object (printed as JSON
	// unless -o table).
	columns []string
	run     func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error)
}

// tenantPath is the admin API path of a tenant's resource.
func tenantPath(id string, rest ...string) string {
	p := "tenants/" + adminclient.Seg(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// get returns a run func that GETs the path made from the positional
// arguments.
func get(path func(pos []string, o *adminOpts) string) func(context.Context, *adminclient.Client, []string, *adminOpts) ([]byte, error) {
	return func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
		return c.Do(ctx, "GET", path(pos, o), "", nil)
	}
}

// adminCmds is every `router admin` subcommand, in the order help lists
// them. It is a function, not a variable, because help prints it.
func adminCmds() []adminCmd {
	seg := adminclient.Seg
	return []adminCmd{
		{name: "tenants", help: "list tenants", columns: []string{"id", "name", "default_country", "default_owner", "on_miss", "created_at"},
			run: get(func([]string, *adminOpts) string { return "tenants" })},
		{name: "tenants delete", args: "ID", min: 1, max: 1, flags: []string{"confirm"},
			help: "delete a tenant with its phone index, events, settings, credentials and Ringostat connection",
			more: "--confirm must repeat the id; the audit log keeps the deletion.",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				if o.confirm == "" {
					return nil, usagef("admin tenants delete: --confirm %s is required: the tenant's index, events, settings and credentials go for good", pos[0])
				}
				return c.Do(ctx, "DELETE", tenantPath(pos[0])+"?confirm="+url.QueryEscape(o.confirm), "", nil)
			}},
		{name: "create-tenant", args: "ID [KEY=VALUE...]", min: 1, max: -1, flags: []string{"name"},
			help: "create a tenant; prints its webhook secret once",
			more: "KEY=VALUE pairs are tenant settings, as for `router admin set`.",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				body, err := settingsBody(pos[1:])
				if err != nil {
					return nil, err
				}
				body["id"] = pos[0]
				if o.name != "" {
					body["name"] = o.name
				}
				return c.JSON(ctx, "POST", "tenants", body)
			}},
		{name: "tenant", args: "ID", min: 1, max: 1, help: "show a tenant's settings",
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0]) })},
		{name: "set", args: "ID KEY=VALUE...", min: 2, max: -1, help: "change settings (only those given)",
			more: `Examples: default_country=UA route_budget_ms=500 owner_order=lead,contact
on_miss=default_owner lead_on_call_start=true callback_due_minutes=30
timezone=Europe/Kyiv "pipeline_rules=pool_name=Context ads:7001;utm_source=fb:7002"
presence=skip_offline on_unavailable=default_owner auto_callback=true
auto_callback_delay_seconds=60; matrix, form_mapping and call_mapping take JSON.`,
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				body, err := settingsBody(pos[1:])
				if err != nil {
					return nil, err
				}
				return c.JSON(ctx, "PATCH", tenantPath(pos[0]), body)
			}},
		{name: "set-default-owner", args: "ID CRM_USER_ID", min: 2, max: 2, help: `set the default owner ("" clears it)`,
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "default-owner"), map[string]string{"crm_user_id": pos[1]})
			}},
		{name: "default-owner", args: "ID", min: 1, max: 1, help: "show the default owner",
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "default-owner") })},
		{name: "put-employee", args: "ID CRM_USER_ID", min: 2, max: 2, flags: []string{"sip", "phone", "name", "email"},
			help: "map a CRM user to a SIP login or phone",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "employees", seg(pos[1])),
					map[string]string{"sip": o.sip, "phone": o.phone, "name": o.name, "email": o.email})
			}},
		{name: "employees", args: "ID", min: 1, max: 1, help: "list employees", columns: []string{"crm_user_id", "sip", "phone", "name", "email"},
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "employees") })},
		{name: "delete-employee", args: "ID CRM_USER_ID", min: 2, max: 2, help: "remove an employee mapping",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "DELETE", tenantPath(pos[0], "employees", seg(pos[1])), "", nil)
			}},
		{name: "stop-add", args: "ID NUMBER", min: 2, max: 2, flags: []string{"kind", "note"},
			help: "add a number to the stop list",
			more: "--kind line (default): one of the project's own lines, calls to or from it create nothing;\n--kind client: a client's number whose calls create nothing.",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				body := map[string]string{"note": o.note}
				if o.kind != "" {
					body["kind"] = o.kind
				}
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "stop-list", seg(pos[1])), body)
			}},
		{name: "stop-list", args: "ID", min: 1, max: 1, help: "list the stop list", columns: []string{"number", "kind", "note", "created_at"},
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "stop-list") })},
		{name: "stop-remove", args: "ID NUMBER", min: 2, max: 2, help: "remove a number from the stop list",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "DELETE", tenantPath(pos[0], "stop-list", seg(pos[1])), "", nil)
			}},
		{name: "import", args: "ID FILE", min: 2, max: 2, flags: []string{"format"}, help: `import contacts (FILE "-" reads stdin)`,
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				data, err := readInput(pos[1])
				if err != nil {
					return nil, err
				}
				f := o.format
				if f == "" {
					switch {
					case strings.HasSuffix(pos[1], ".csv"):
						f = "csv"
					case strings.HasSuffix(pos[1], ".jsonl"), strings.HasSuffix(pos[1], ".ndjson"):
						f = "jsonl"
					}
				}
				path := tenantPath(pos[0], "contacts", "import")
				if f != "" {
					path += "?format=" + seg(f)
				}
				return c.Do(ctx, "POST", path, "", data)
			}},
		{name: "connect", args: "ID CRM BASE_URL CREDENTIALS_JSON|@FILE", min: 4, max: 4,
			help: "connect a CRM (amocrm, zoho, retailcrm, uspacy); starts a full sync",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				creds := []byte(pos[3])
				if strings.HasPrefix(pos[3], "@") {
					var err error
					if creds, err = readInput(pos[3][1:]); err != nil {
						return nil, err
					}
				}
				if !json.Valid(creds) {
					return nil, fmt.Errorf("admin connect: credentials are not valid JSON")
				}
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "integration"),
					map[string]any{"crm": pos[1], "base_url": pos[2], "credentials": json.RawMessage(creds)})
			}},
		{name: "integration", args: "ID", min: 1, max: 1, help: "show the CRM connection and its sync state",
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "integration") })},
		{name: "activate", args: "ID", min: 1, max: 1, flags: []string{"resend"}, help: "restart syncing (with a full sync)",
			more: "--resend replays the call events that waited (today and the 2 days before); without it they are dropped.",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				return c.JSON(ctx, "POST", tenantPath(pos[0], "integration", "activate"), map[string]bool{"resend": o.resend})
			}},
		{name: "deactivate", args: "ID", min: 1, max: 1, help: "stop syncing, keep the index",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "POST", tenantPath(pos[0], "integration", "deactivate"), "", nil)
			}},
		{name: "crm-users", args: "ID", min: 1, max: 1, help: "the CRM's users, for put-employee", columns: []string{"id", "name", "email", "active", "extension"},
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "crm-users") })},
		{name: "ringostat connect", args: "ID PROJECT_ID", min: 2, max: 2, flags: []string{"key", "base-url"},
			help: "connect the tenant's Ringostat project; starts pushing names to Smart Phone",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				key := o.key
				if key == "" {
					// Read here, not as the flag's default, which -h prints.
					key = env("ROUTER_RINGOSTAT_KEY", "")
				}
				if strings.HasPrefix(key, "@") {
					b, err := readInput(key[1:])
					if err != nil {
						return nil, err
					}
					key = strings.TrimSpace(string(b))
				}
				if key == "" {
					return nil, usagef("admin ringostat connect: no key; pass --key or set ROUTER_RINGOSTAT_KEY")
				}
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "ringostat"), map[string]string{"base_url": o.baseURL, "auth_key": key, "project_id": pos[1]})
			}},
		{name: "ringostat show", args: "ID", min: 1, max: 1,
			help: "the Ringostat connection: state, last refusal, push progress, recovered calls, presence",
			run:  get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "ringostat") })},
		{name: "ringostat disconnect", args: "ID", min: 1, max: 1, help: "stop talking to the tenant's Ringostat project",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "DELETE", tenantPath(pos[0], "ringostat"), "", nil)
			}},
		{name: "salesmanago connect", args: "ID BASE_URL CLIENT_ID OWNER_EMAIL", min: 4, max: 4, flags: []string{"api-key", "api-secret"},
			help: "connect the tenant's SALESmanago account to its Zoho CRM; starts the first (full) sync",
			more: `BASE_URL is the account's API server (e.g. https://app3.salesmanago.pl), CLIENT_ID and the
API key and secret are under Settings → Integration → API, OWNER_EMAIL is the account's main user.
The key and secret are read from --api-key/--api-secret (or @FILE), else from ROUTER_SALESMANAGO_API_KEY
and ROUTER_SALESMANAGO_API_SECRET; they are stored sealed and never shown again.`,
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				key, err := secretArg(o.apiKey, "ROUTER_SALESMANAGO_API_KEY", "salesmanago connect", "--api-key")
				if err != nil {
					return nil, err
				}
				sec, err := secretArg(o.apiSecret, "ROUTER_SALESMANAGO_API_SECRET", "salesmanago connect", "--api-secret")
				if err != nil {
					return nil, err
				}
				return c.JSON(ctx, "PUT", tenantPath(pos[0], "salesmanago"), map[string]string{"base_url": pos[1], "client_id": pos[2],
					"owner_email": pos[3], "api_key": key, "api_secret": sec})
			}},
		{name: "salesmanago show", args: "ID", min: 1, max: 1,
			help: "the SALESmanago connection: state, last pass and its error, progress, counts",
			run:  get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "salesmanago") })},
		{name: "salesmanago activate", args: "ID", min: 1, max: 1, help: "resume the SALESmanago sync (after a pause or a refused key) and run a pass",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "POST", tenantPath(pos[0], "salesmanago", "activate"), "", nil)
			}},
		{name: "salesmanago deactivate", args: "ID", min: 1, max: 1, help: "pause the SALESmanago sync, keep the connection",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "POST", tenantPath(pos[0], "salesmanago", "deactivate"), "", nil)
			}},
		{name: "salesmanago sync", args: "ID", min: 1, max: 1, help: "run a SALESmanago ⇄ Zoho pass now (in the background)",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "POST", tenantPath(pos[0], "salesmanago", "sync"), "", nil)
			}},
		{name: "salesmanago disconnect", args: "ID", min: 1, max: 1, help: "stop the SALESmanago sync and forget its credentials; no record is touched",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return c.Do(ctx, "DELETE", tenantPath(pos[0], "salesmanago"), "", nil)
			}},
		{name: "status", args: "ID", min: 1, max: 1, help: "index size, cache, integration, call events",
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "status") })},
		{name: "audit", args: "[ID]", min: 0, max: 1, flags: []string{"limit"},
			help: "recent admin changes of a tenant, or of everything (tokens too)", columns: []string{"at", "tenant_id", "actor", "action", "detail"},
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				if len(pos) == 0 {
					return c.Audit(ctx, o.limit)
				}
				return c.Do(ctx, "GET", tenantPath(pos[0], "audit")+"?limit="+strconv.Itoa(o.limit), "", nil)
			}},
		{name: "rotate-secret", args: "ID", min: 1, max: 1, flags: []string{"grace"},
			help: "new webhook secret, printed once; the old one keeps working for --grace (0 ends it at once)",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				return c.RotateSecret(ctx, pos[0], o.grace)
			}},
		{name: "token create", args: "NAME", min: 1, max: 1, flags: []string{"scope"},
			help: "new admin token, printed once (scope read: GET and HEAD only)",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, o *adminOpts) ([]byte, error) {
				if o.scope == "" {
					return nil, usagef("admin token create: --scope read|admin is required")
				}
				return c.CreateToken(ctx, pos[0], o.scope)
			}},
		{name: "token list", help: "admin tokens, without the tokens themselves", columns: []string{"id", "name", "scope", "created_at", "revoked"},
			run: func(ctx context.Context, c *adminclient.Client, _ []string, _ *adminOpts) ([]byte, error) {
				return c.Tokens(ctx)
			}},
		{name: "token revoke", args: "TOKEN_ID", min: 1, max: 1, help: "revoke an admin token on every instance at once",
			run: func(ctx context.Context, c *adminclient.Client, pos []string, _ *adminOpts) ([]byte, error) {
				return nil, c.RevokeToken(ctx, pos[0])
			}},
		{name: "event", args: "ID EVENT_ID", min: 2, max: 2, help: "a call event: its fields, state and what it did in the CRM",
			run: get(func(pos []string, _ *adminOpts) string { return tenantPath(pos[0], "events", seg(pos[1])) })},
		{name: "events", args: "ID", min: 1, max: 1, flags: []string{"state", "caller", "limit"},
			help: "call events, failed and waiting first", columns: []string{"id", "event", "state", "attempts", "received_at", "note"},
			run: get(func(pos []string, o *adminOpts) string {
				q := url.Values{"limit": {strconv.Itoa(o.limit)}}
				if o.state != "" {
					q.Set("state", o.state)
				}
				if o.caller != "" {
					q.Set("caller", o.caller)
				}
				return tenantPath(pos[0], "events") + "?" + q.Encode()
			})},
		{name: "rejected", args: "ID", min: 1, max: 1, flags: []string{"limit"}, help: "event bodies answered 400, with the reason",
			columns: []string{"id", "received_at", "reason", "body"},
			run: get(func(pos []string, o *adminOpts) string {
				return tenantPath(pos[0], "events", "rejected") + "?limit=" + strconv.Itoa(o.limit)
			})},
		{name: "report", args: "ID", min: 1, max: 1, flags: []string{"days"},
			help: "the routing report: per day and manager, calls routed, answered, fallen through, and who answered instead",
			run: get(func(pos []string, o *adminOpts) string {
				path := tenantPath(pos[0], "report")
				if o.days != "" {
					path += "?days=" + url.QueryEscape(o.days)
				}
				return path
			})},
		{name: "explain", args: "ID NUMBER", min: 2, max: 2,
			help: "what the route endpoint would answer for NUMBER now, and why",
			more: "Shows the normalized forms, the index rows, the owner, the employee and the answer itself.",
			run: get(func(pos []string, _ *adminOpts) string {
				return tenantPath(pos[0], "explain") + "?caller=" + url.QueryEscape(pos[1])
			})},
	}
}

// adminGroups are the subcommands that take a subcommand of their own.
var adminGroups = map[string]bool{"token": true, "ringostat": true, "salesmanago": true}

// secretArg returns a secret given as a flag's value (@FILE reads it from
// a file), else its environment variable: read here, not as the flag's
// default, which -h prints. A usage error names the flag when neither is
// set.
func secretArg(v, envName, cmd, flagName string) (string, error) {
	if v == "" {
		v = env(envName, "")
	}
	if strings.HasPrefix(v, "@") {
		b, err := readInput(v[1:])
		if err != nil {
			return "", err
		}
		v = strings.TrimSpace(string(b))
	}
	if v == "" {
		return "", usagef("admin %s: no %s; pass %s or set %s", cmd, flagName[2:], flagName, envName)
	}
	return v, nil
}

// adminUsage is `router admin help`: the common flags and one line per
// subcommand.
func adminUsage() string {
	var b strings.Builder
	b.WriteString(`usage: router admin [--url URL] [--token TOKEN] [-o table|json] <command> [args] [flags]

  --url    the server (ROUTER_URL, default http://127.0.0.1:8080)
  --token  the admin token (ROUTER_ADMIN_TOKEN)
  -o       output: table (the default for lists) or json (the default otherwise)

These flags may also follow the command. router admin <command> -h shows a
command's own flags.

commands:
`)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range adminCmds() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	tw.Flush()
	return b.String()
}

// groupUsage lists the subcommands of a group (token, ringostat).
func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: router admin %s <command> [args] [flags]\n\ncommands:\n", group)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range adminCmds() {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
		}
	}
	tw.Flush()
	return b.String()
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// runAdmin runs `router admin`: common flags, then a subcommand looked up
// in adminCmds with a flag set of its own, which also takes the common
// flags (given before the subcommand they become its defaults). Help goes
// to out and returns nil; errors name the subcommand and its usage.
func runAdmin(args []string, out io.Writer) error {
	var common adminOpts
	fs := flag.NewFlagSet("router admin", flag.ContinueOnError)
	// The token takes no default from the environment: -h prints
	// defaults. It is read from ROUTER_ADMIN_TOKEN once the flags are in.
	commonFlags(fs, &common, adminOpts{url: env("ROUTER_URL", "http://127.0.0.1:8080")})
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(out, adminUsage())
		return nil
	} else if err != nil {
		return usagef("admin: %v (router admin help)", err)
	}
	rest := fs.Args()
	if len(rest) == 0 || isHelp(rest[0]) {
		fmt.Fprint(out, adminUsage())
		return nil
	}
	name, rest := rest[0], rest[1:]
	if len(rest) > 0 && findAdminCmd(name+" "+rest[0]) != nil {
		// A command of two words beside one of one: tenants delete.
		name, rest = name+" "+rest[0], rest[1:]
	} else if adminGroups[name] {
		if len(rest) == 0 || isHelp(rest[0]) {
			fmt.Fprint(out, groupUsage(name))
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd := findAdminCmd(name)
	if cmd == nil {
		return usagef("admin: unknown command %q (router admin help)", name)
	}
	o := common
	sub := flag.NewFlagSet("router admin "+name, flag.ContinueOnError)
	def := common
	def.token = ""
	commonFlags(sub, &o, def)
	for _, f := range cmd.flags {
		adminFlags[f](sub, &o)
	}
	pos, err := parseInterleaved(sub, rest)
	usage := fmt.Sprintf("usage: router admin %s %s [flags]\n\n%s\n", name, cmd.args, cmd.help)
	if cmd.more != "" {
		usage += "\n" + cmd.more + "\n"
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		printFlags(sub, usage, out)
		return nil
	case err != nil:
		return usagef("admin %s: %v (router admin %s -h)", name, err, name)
	case len(pos) < cmd.min || cmd.max >= 0 && len(pos) > cmd.max:
		return usagef("admin %s: usage: router admin %s %s", name, name, cmd.args)
	case o.output != "" && o.output != "table" && o.output != "json":
		return usagef("admin %s: -o: must be table or json, got %q", name, o.output)
	}
	if o.token == "" {
		o.token = common.token
	}
	if o.token == "" {
		o.token = env("ROUTER_ADMIN_TOKEN", "")
	}
	if o.token == "" {
		return fmt.Errorf("admin: no token; pass --token or set ROUTER_ADMIN_TOKEN")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	body, err := cmd.run(ctx, adminclient.New(o.url, o.token), pos, &o)
	if err != nil {
		return err
	}
	if o.output == "table" || o.output == "" && cmd.columns != nil {
		return printTable(out, body, cmd.columns)
	}
	return printJSON(out, body)
}

// findAdminCmd returns the subcommand called name, nil when none.
func findAdminCmd(name string) *adminCmd {
	for _, c := range adminCmds() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

// commonFlags registers --url, --token and -o on fs with defaults def.
func commonFlags(fs *flag.FlagSet, o *adminOpts, def adminOpts) {
	fs.StringVar(&o.url, "url", def.url, "server URL (ROUTER_URL)")
	fs.StringVar(&o.token, "token", def.token, "admin token (ROUTER_ADMIN_TOKEN)")
	fs.StringVar(&o.output, "o", def.output, "output: table or json")
}

// printTable prints a JSON answer as an aligned table: a list as one row
// per element under the columns (the keys of its first element when
// columns is nil), an object as KEY VALUE rows. Nested values are shown as
// compact JSON, long ones cut.
func printTable(out io.Writer, body []byte, columns []string) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if body[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return fmt.Errorf("admin: the server's answer is not JSON: %w", err)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(tw, "KEY\tVALUE")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\n", k, cell(obj[k]))
		}
		return tw.Flush()
	}
	var rows []map[string]json.RawMessage
	if err := json.Unmarshal(body, &rows); err != nil {
		return fmt.Errorf("admin: the server's answer is not a JSON list: %w", err)
	}
	if columns == nil && len(rows) > 0 {
		for k := range rows[0] {
			columns = append(columns, k)
		}
		sort.Strings(columns)
	}
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
	for _, r := range rows {
		cells := make([]string, len(columns))
		for i, c := range columns {
			cells[i] = cell(r[c])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// maxCell is the widest a table cell gets, in characters.
const maxCell = 60

// cell renders one JSON value for a table: strings bare, null and absent
// as "-", anything else as compact JSON; tabs and line breaks become
// spaces, and a long value is cut with "…".
func cell(v json.RawMessage) string {
	var s string
	switch {
	case len(v) == 0 || string(v) == "null":
		return "-"
	case json.Unmarshal(v, &s) == nil:
	default:
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			return string(v)
		}
		s = b.String()
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) > maxCell {
		r := []rune(s)
		s = string(r[:maxCell-1]) + "…"
	}
	return s
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, as `router admin put-employee t 42 --sip x` reads
// naturally that way.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// settingsBody turns KEY=VALUE pairs into a JSON object: owner_order as a
// list, numbers and booleans as such.
func settingsBody(pairs []string) (map[string]any, error) {
	body := map[string]any{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("admin: %q is not KEY=VALUE", p)
		}
		switch {
		case k == "owner_order" || k == "form_entities" || k == "form_phone_fields" || k == "form_email_fields":
			body[k] = splitList(v)
		case k == "matrix" || k == "form_mapping" || k == "call_mapping":
			// Structured settings are given as JSON, e.g.
			// matrix='{"incoming_missed_new":[]}'.
			var raw json.RawMessage
			if err := json.Unmarshal([]byte(v), &raw); err != nil {
				return nil, fmt.Errorf("admin: %s: not JSON: %w", k, err)
			}
			body[k] = raw
		case k == "pipeline_rules":
			// PARAM=VALUE:PIPELINE;... e.g. pool_name=Context ads:7001
			rules := []map[string]string{}
			for _, r := range strings.Split(v, ";") {
				if strings.TrimSpace(r) == "" {
					continue
				}
				cond, pipeline, ok1 := strings.Cut(r, ":")
				param, value, ok2 := strings.Cut(cond, "=")
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("admin: pipeline_rules: %q is not PARAM=VALUE:PIPELINE", r)
				}
				rules = append(rules, map[string]string{"param": param, "value": value, "pipeline": pipeline})
			}
			body[k] = rules
		case v == "true" || v == "false":
			body[k] = v == "true"
		default:
			if n, err := strconv.Atoi(v); err == nil && (k == "route_budget_ms" || k == "callback_due_minutes" ||
				k == "auto_callback_delay_seconds" || k == "auto_callback_window_minutes" || k == "reconcile_interval_hours") {
				body[k] = n
			} else {
				body[k] = v
			}
		}
	}
	return body, nil
}

// splitList reads a comma-separated list; "" is the empty list.
func splitList(v string) []string {
	out := []string{}
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return b, nil
}

func printJSON(out io.Writer, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		_, err = out.Write(body)
		return err
	}
	buf.WriteByte('\n')
	_, err := out.Write(buf.Bytes())
	return err
}
