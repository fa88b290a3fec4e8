package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/adminclient"
)

const adminUsage = `usage: router admin [--url URL] [--token TOKEN] <command> [args]

  --url    the server (ROUTER_URL, default http://127.0.0.1:8080)
  --token  the admin token (ROUTER_ADMIN_TOKEN)

commands:
  tenants                                      list tenants
  tenants delete ID --confirm ID               delete a tenant with its phone index, events, settings,
                                               credentials and Ringostat connection (the audit log keeps
                                               the deletion); --confirm must repeat the id
  create-tenant ID [--name N] [KEY=VALUE...]   create a tenant; prints its webhook secret once
  tenant ID                                    show a tenant's settings
  set ID KEY=VALUE...                          change settings (default_country=UA route_budget_ms=500
                                               owner_order=lead,contact on_miss=default_owner
                                               lead_on_call_start=true callback_due_minutes=30
                                               timezone=Europe/Kyiv
                                               "pipeline_rules=pool_name=Context ads:7001;utm_source=fb:7002"
                                               presence=skip_offline on_unavailable=default_owner
                                               auto_callback=true auto_callback_delay_seconds=60)
  set-default-owner ID CRM_USER_ID             set the default owner ("" clears it)
  default-owner ID                             show the default owner
  put-employee ID CRM_USER_ID [--sip S] [--phone P] [--name N] [--email E]
  employees ID                                 list employees
  delete-employee ID CRM_USER_ID
  stop-add ID NUMBER [--kind line|client] [--note TEXT]
                                               add a number to the stop list: one of the project's own
                                               lines (default; calls to or from it create nothing) or a
                                               client's number
  stop-list ID                                 list the stop list
  stop-remove ID NUMBER
  import ID FILE [--format csv|jsonl]          import contacts (FILE "-" reads stdin)
  connect ID CRM BASE_URL CREDENTIALS_JSON     connect a CRM (amocrm, zoho, retailcrm, uspacy); CREDENTIALS_JSON
                                               may be @file; starts a full sync
  integration ID                               show the CRM connection and its sync state
  activate ID [--resend]                       restart syncing (with a full sync); --resend replays the call
                                               events that waited (today and the 2 days before), else
                                               they are dropped
  deactivate ID                                stop syncing, keep the index
  crm-users ID                                 the CRM's users, for put-employee
  ringostat connect ID PROJECT_ID [--key K|@FILE] [--base-url U]
                                               connect the tenant's Ringostat project (API key from --key, or
                                               ROUTER_RINGOSTAT_KEY); starts pushing names to Smart Phone
  ringostat show ID                            the Ringostat connection: state and Ringostat's last refusal,
                                               push progress, recovered calls, presence
  ringostat disconnect ID                      stop talking to the tenant's Ringostat project
  status ID                                    index size, cache, integration
  audit [ID] [--limit N]                       recent admin changes of a tenant, or of everything (tokens too)
  rotate-secret ID [--grace 24h]               new webhook secret, printed once; the old one keeps working for
                                               --grace (at most 720h; 0 ends it at once)
  token create NAME --scope read|admin         new admin token, printed once (read: GET and HEAD only)
  token list                                   admin tokens, without the tokens themselves
  token revoke TOKEN_ID                        revoke an admin token on every instance at once
  event ID EVENT_ID                            a call event: its fields, state and what it did in the CRM
  rejected ID [--limit N]                      event bodies answered 400, with the reason
  events ID [--state S] [--caller C] [--limit N]
                                               call events, failed and waiting first
  explain ID NUMBER                            what the route endpoint would answer for NUMBER now, and why:
                                               normalized forms, index rows, owner, employee, the answer
  report ID [--days N]                         the routing report: per day and manager, calls routed to them,
                                               answered by them, fell through, and who answered instead
                                               (N from 1 to 90, default 7)
`

func runAdmin(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	url := fs.String("url", env("ROUTER_URL", "http://127.0.0.1:8080"), "server URL (ROUTER_URL)")
	token := fs.String("token", env("ROUTER_ADMIN_TOKEN", ""), "admin token (ROUTER_ADMIN_TOKEN)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, adminUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" {
		fmt.Fprint(out, adminUsage)
		return nil
	}
	if *token == "" {
		return fmt.Errorf("admin: no token; pass --token or set ROUTER_ADMIN_TOKEN")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	body, err := adminCommand(ctx, adminclient.New(*url, *token), rest[0], rest[1:])
	if err != nil {
		return err
	}
	return printJSON(out, body)
}

// adminCommand runs one admin subcommand and returns the server's answer.
func adminCommand(ctx context.Context, c *adminclient.Client, cmd string, args []string) ([]byte, error) {
	seg := adminclient.Seg
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	name := fs.String("name", "", "display name")
	sip := fs.String("sip", "", "SIP login")
	phone := fs.String("phone", "", "phone number")
	email := fs.String("email", "", "e-mail")
	note := fs.String("note", "", "note")
	kind := fs.String("kind", "", "stop-list kind: line (default) or client")
	format := fs.String("format", "", "csv or jsonl (default: from the file name or content)")
	limit := fs.Int("limit", 50, "entries")
	resend := fs.Bool("resend", false, "replay waiting call events on activation")
	grace := fs.Duration("grace", 24*time.Hour, "how long the replaced webhook secret keeps working")
	scope := fs.String("scope", "", "admin token scope: read or admin")
	state := fs.String("state", "", "call event state: waiting, done, failed or dropped")
	caller := fs.String("caller", "", "the client's number, for events")
	rsKey := fs.String("key", env("ROUTER_RINGOSTAT_KEY", ""), "Ringostat Auth-key, or @FILE (ROUTER_RINGOSTAT_KEY)")
	baseURL := fs.String("base-url", "", "Ringostat API base URL (default https://api.ringostat.net)")
	confirm := fs.String("confirm", "", "the tenant id again, to delete it")
	days := fs.String("days", "", "days of the routing report, today included: 1 to 90 (default 7)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	need := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("admin %s: usage: router admin %s %s", cmd, cmd, what)
		}
		return nil
	}
	switch cmd {
	case "tenants":
		switch {
		case len(pos) == 0:
			return c.Do(ctx, "GET", "tenants", "", nil)
		case len(pos) == 2 && pos[0] == "delete":
			if *confirm == "" {
				return nil, fmt.Errorf("admin tenants delete: --confirm %s is required: the tenant's index, events, settings and credentials go for good", pos[1])
			}
			return c.Do(ctx, "DELETE", "tenants/"+seg(pos[1])+"?confirm="+url.QueryEscape(*confirm), "", nil)
		}
		return nil, fmt.Errorf("admin tenants: usage: router admin tenants | tenants delete ID --confirm ID")
	case "create-tenant":
		if len(pos) < 1 {
			return nil, need(1, "ID [--name N] [KEY=VALUE...]")
		}
		body, err := settingsBody(pos[1:])
		if err != nil {
			return nil, err
		}
		body["id"] = pos[0]
		if *name != "" {
			body["name"] = *name
		}
		return c.JSON(ctx, "POST", "tenants", body)
	case "tenant":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0]), "", nil)
	case "set":
		if len(pos) < 2 {
			return nil, need(2, "ID KEY=VALUE...")
		}
		body, err := settingsBody(pos[1:])
		if err != nil {
			return nil, err
		}
		return c.JSON(ctx, "PATCH", "tenants/"+seg(pos[0]), body)
	case "set-default-owner":
		if err := need(2, "ID CRM_USER_ID"); err != nil {
			return nil, err
		}
		return c.JSON(ctx, "PUT", "tenants/"+seg(pos[0])+"/default-owner", map[string]string{"crm_user_id": pos[1]})
	case "default-owner":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/default-owner", "", nil)
	case "put-employee":
		if err := need(2, "ID CRM_USER_ID [--sip S] [--phone P] [--name N] [--email E]"); err != nil {
			return nil, err
		}
		return c.JSON(ctx, "PUT", "tenants/"+seg(pos[0])+"/employees/"+seg(pos[1]),
			map[string]string{"sip": *sip, "phone": *phone, "name": *name, "email": *email})
	case "employees":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/employees", "", nil)
	case "delete-employee":
		if err := need(2, "ID CRM_USER_ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "DELETE", "tenants/"+seg(pos[0])+"/employees/"+seg(pos[1]), "", nil)
	case "stop-add":
		if err := need(2, "ID NUMBER [--kind line|client] [--note TEXT]"); err != nil {
			return nil, err
		}
		body := map[string]string{"note": *note}
		if *kind != "" {
			body["kind"] = *kind
		}
		return c.JSON(ctx, "PUT", "tenants/"+seg(pos[0])+"/stop-list/"+seg(pos[1]), body)
	case "stop-list":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/stop-list", "", nil)
	case "stop-remove":
		if err := need(2, "ID NUMBER"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "DELETE", "tenants/"+seg(pos[0])+"/stop-list/"+seg(pos[1]), "", nil)
	case "import":
		if err := need(2, "ID FILE [--format csv|jsonl]"); err != nil {
			return nil, err
		}
		data, err := readInput(pos[1])
		if err != nil {
			return nil, err
		}
		f := *format
		if f == "" {
			switch {
			case strings.HasSuffix(pos[1], ".csv"):
				f = "csv"
			case strings.HasSuffix(pos[1], ".jsonl"), strings.HasSuffix(pos[1], ".ndjson"):
				f = "jsonl"
			}
		}
		path := "tenants/" + seg(pos[0]) + "/contacts/import"
		if f != "" {
			path += "?format=" + seg(f)
		}
		return c.Do(ctx, "POST", path, "", data)
	case "connect":
		if err := need(4, "ID CRM BASE_URL CREDENTIALS_JSON|@FILE"); err != nil {
			return nil, err
		}
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
		return c.JSON(ctx, "PUT", "tenants/"+seg(pos[0])+"/integration",
			map[string]any{"crm": pos[1], "base_url": pos[2], "credentials": json.RawMessage(creds)})
	case "integration":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/integration", "", nil)
	case "activate":
		if err := need(1, "ID [--resend]"); err != nil {
			return nil, err
		}
		return c.JSON(ctx, "POST", "tenants/"+seg(pos[0])+"/integration/activate", map[string]bool{"resend": *resend})
	case "deactivate":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "POST", "tenants/"+seg(pos[0])+"/integration/deactivate", "", nil)
	case "ringostat":
		return ringostatCommand(ctx, c, pos, *rsKey, *baseURL)
	case "crm-users":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/crm-users", "", nil)
	case "status":
		if err := need(1, "ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/status", "", nil)
	case "audit":
		if len(pos) == 0 {
			return c.Audit(ctx, *limit)
		}
		if err := need(1, "[ID] [--limit N]"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/audit?limit="+strconv.Itoa(*limit), "", nil)
	case "rotate-secret":
		if err := need(1, "ID [--grace 24h]"); err != nil {
			return nil, err
		}
		return c.RotateSecret(ctx, pos[0], *grace)
	case "token":
		return tokenCommand(ctx, c, pos, *scope)
	case "event":
		if err := need(2, "ID EVENT_ID"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/events/"+seg(pos[1]), "", nil)
	case "explain":
		if err := need(2, "ID NUMBER"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/explain?caller="+url.QueryEscape(pos[1]), "", nil)
	case "report":
		if err := need(1, "ID [--days N]"); err != nil {
			return nil, err
		}
		path := "tenants/" + seg(pos[0]) + "/report"
		if *days != "" {
			path += "?days=" + url.QueryEscape(*days)
		}
		return c.Do(ctx, "GET", path, "", nil)
	case "events":
		if err := need(1, "ID [--state S] [--caller C] [--limit N]"); err != nil {
			return nil, err
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *state != "" {
			q.Set("state", *state)
		}
		if *caller != "" {
			q.Set("caller", *caller)
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/events?"+q.Encode(), "", nil)
	case "rejected":
		if err := need(1, "ID [--limit N]"); err != nil {
			return nil, err
		}
		return c.Do(ctx, "GET", "tenants/"+seg(pos[0])+"/events/rejected?limit="+strconv.Itoa(*limit), "", nil)
	}
	return nil, fmt.Errorf("admin: unknown command %q (router admin help)", cmd)
}

// tokenCommand runs `router admin token create|list|revoke`.
func tokenCommand(ctx context.Context, c *adminclient.Client, pos []string, scope string) ([]byte, error) {
	sub := ""
	if len(pos) > 0 {
		sub = pos[0]
	}
	switch {
	case sub == "create" && len(pos) == 2:
		if scope == "" {
			return nil, fmt.Errorf("admin token create: --scope read|admin is required")
		}
		return c.CreateToken(ctx, pos[1], scope)
	case sub == "list" && len(pos) == 1:
		return c.Tokens(ctx)
	case sub == "revoke" && len(pos) == 2:
		return nil, c.RevokeToken(ctx, pos[1])
	}
	return nil, fmt.Errorf("admin token: usage: router admin token create NAME --scope read|admin | token list | token revoke TOKEN_ID")
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

// ringostatCommand runs `router admin ringostat connect|show|disconnect`.
func ringostatCommand(ctx context.Context, c *adminclient.Client, pos []string, key, baseURL string) ([]byte, error) {
	seg := adminclient.Seg
	usage := fmt.Errorf("admin ringostat: usage: router admin ringostat connect ID PROJECT_ID [--key K|@FILE] [--base-url U] | show ID | disconnect ID")
	if len(pos) < 2 {
		return nil, usage
	}
	path := "tenants/" + seg(pos[1]) + "/ringostat"
	switch {
	case pos[0] == "connect" && len(pos) == 3:
		if strings.HasPrefix(key, "@") {
			b, err := readInput(key[1:])
			if err != nil {
				return nil, err
			}
			key = strings.TrimSpace(string(b))
		}
		if key == "" {
			return nil, fmt.Errorf("admin ringostat connect: no key; pass --key or set ROUTER_RINGOSTAT_KEY")
		}
		return c.JSON(ctx, "PUT", path, map[string]string{"base_url": baseURL, "auth_key": key, "project_id": pos[2]})
	case pos[0] == "show" && len(pos) == 2:
		return c.Do(ctx, "GET", path, "", nil)
	case pos[0] == "disconnect" && len(pos) == 2:
		return c.Do(ctx, "DELETE", path, "", nil)
	}
	return nil, usage
}
