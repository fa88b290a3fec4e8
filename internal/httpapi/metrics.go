package httpapi

import (
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// MetricHelp is the one description of every callrouter metric family: the
// text of its `# HELP` line on /metrics, and the table of
// docs/operations.md (a test keeps the two and the code's metric names in
// step).
var MetricHelp = map[string]string{
	"callrouter_http_requests_total":                    "HTTP answers by endpoint (route, crm_webhook, events, admin, health, metrics, other) and status code.",
	"callrouter_route_duration_seconds":                 "In-server time of a route answer, from request parsed to answer written.",
	"callrouter_route_reasons_total":                    "Route answers by reason: owner, default_owner, no_match, unmapped_owner, invalid_caller, timeout, unavailable.",
	"callrouter_route_panics_total":                     "Route requests whose handler panicked; the PBX still got a 200 without a forward.",
	"callrouter_handler_panics_total":                   "Non-route requests whose handler panicked, answered 500.",
	"callrouter_route_store_reads_total":                "Cache misses that read the phone index in the store.",
	"callrouter_route_store_errors_total":               "Store reads of a route miss that failed or ran out of time.",
	"callrouter_route_store_read_duration_seconds":      "Time of a route miss's store read.",
	"callrouter_route_live_lookup_failures_total":       "Live CRM searches of a route miss that failed or ran out of the call's budget.",
	"callrouter_cache_hits_total":                       "Route cache hits on an owner.",
	"callrouter_cache_negative_hits_total":              "Route cache hits on a caller remembered as unknown.",
	"callrouter_cache_misses_total":                     "Route cache misses.",
	"callrouter_cache_fills_total":                      "Cache entries filled from the store after a miss.",
	"callrouter_cache_fills_discarded_total":            "Cache fills dropped because the index changed while they were read.",
	"callrouter_cache_invalidations_total":              "Cache keys invalidated by index changes.",
	"callrouter_sync_entities_applied_total":            "CRM entities written to the phone index by sync.",
	"callrouter_sync_entities_deleted_total":            "CRM entities removed from the phone index by sync.",
	"callrouter_sync_phones_rejected_total":             "CRM phone values sync could not normalize.",
	"callrouter_sync_pages_total":                       "CRM pages read by sync.",
	"callrouter_salesmanago_passes_total":               "SALESmanago ⇄ Zoho CRM sync passes started.",
	"callrouter_salesmanago_pass_errors_total":          "SALESmanago ⇄ Zoho CRM sync passes that ended in an error.",
	"callrouter_salesmanago_written_total":              "Records the SALESmanago sync wrote, by side (zoho, salesmanago).",
	"callrouter_salesmanago_conflicts_total":            "Fields both SALESmanago and Zoho CRM changed between two passes (the later change won).",
	"callrouter_sync_errors_total":                      "Sync cycles that ended in an error.",
	"callrouter_sync_integrations_broken_total":         "Integrations marked broken (credentials refused).",
	"callrouter_sync_stale_entities_skipped_total":      "CRM entities older than the index's copy, skipped.",
	"callrouter_sync_swept_keys_total":                  "Phone keys whose index rows the end of a full sync removed (entities the CRM no longer returned).",
	"callrouter_sync_reconciliations_total":             "Periodic reconciliations started (full syncs begun because reconcile_interval_hours passed).",
	"callrouter_crm_users_changes_total":                "Refreshes of a CRM's users list that found it changed and republished the tenant.",
	"callrouter_crm_users_refresh_errors_total":         "Failed refreshes of a CRM's users list (retried the next cycle; routing keeps the last list).",
	"callrouter_events_reresolved_total":                "Call events whose known lead or contact was found deleted in the CRM and filed again without it.",
	"callrouter_live_lookups_total":                     "Live CRM searches started by route misses.",
	"callrouter_live_lookup_errors_total":               "Live CRM searches that failed.",
	"callrouter_notify_published_total":                 "Change announcements sent to the other instances.",
	"callrouter_notify_flushes_published_total":         "Cache flushes announced to the other instances.",
	"callrouter_notify_applied_total":                   "Change announcements from other instances applied to this cache.",
	"callrouter_notify_resyncs_total":                   "Times this instance lost the change stream and re-read tenants and flushed its cache.",
	"callrouter_notify_errors_total":                    "Change announcements that could not be sent or read.",
	"callrouter_notify_delay_seconds":                   "Time from a change's announcement to its application on this instance.",
	"callrouter_events_received_total":                  "Call events accepted (answered 200 and stored), per tenant.",
	"callrouter_events_duplicate_total":                 "Call events already stored (same uniqueid and kind), answered 200 and not stored again, per tenant.",
	"callrouter_events_rejected_total":                  "Call event bodies answered 400, per tenant.",
	"callrouter_events_rejected_unstored_total":         "Rejected call event bodies not stored (over the tenant's rate, or two writes under way), per tenant.",
	"callrouter_events_rejected_dropped_total":          "Stored rejected call event bodies deleted to keep the tenant's newest 1000, per tenant.",
	"callrouter_events_rejected_expired_total":          "Stored rejected call event bodies deleted by the retention sweep (event_retention_days), per tenant.",
	"callrouter_events_expired_total":                   "Finished call events (done, failed, dropped) deleted by the retention sweep (event_retention_days), per tenant.",
	"callrouter_events_unmapped_answer_tasks_total":     "Follow-up tasks for the default owner made because a call was answered on a line or SIP login no employee is mapped to, per tenant.",
	"callrouter_events_processed_total":                 "Call events written to the CRM, per tenant.",
	"callrouter_events_retries_total":                   "Call event attempts that failed and will be retried, per tenant.",
	"callrouter_events_unverified_retries_total":        "Retries of an event whose earlier attempt may have reached the CRM (checked before repeating).",
	"callrouter_events_failed_total":                    "Call events the CRM refused for good (4xx), per tenant.",
	"callrouter_events_dropped_total":                   "Call events that ran out of attempts or were dropped by an operator, per tenant.",
	"callrouter_events_stop_list_total":                 "Call events of stop-listed numbers, stored but written nowhere, per tenant.",
	"callrouter_events_ingest_batch_size":               "Call events per group commit.",
	"callrouter_events_waiting":                         "Call events waiting to be written to the CRM (the backlog), per tenant; every tenant, with or without a CRM.",
	"callrouter_events_oldest_waiting_seconds":          "Age of the oldest waiting call event (0 when none waits), per tenant.",
	"callrouter_cache_index_keys":                       "Phone keys in the flat warm index of the route cache.",
	"callrouter_cache_index_bytes":                      "Memory of the flat warm index of the route cache, in bytes.",
	"callrouter_events_matrix_nothing_total":            "Call events whose scenario matrix row creates nothing, per tenant.",
	"callrouter_ringostat_auth_failures_total":          "Ringostat API calls refused for the tenant's credentials, per tenant.",
	"callrouter_ringostat_push_requests_total":          "Contact pushes to Ringostat that succeeded, per tenant.",
	"callrouter_ringostat_contacts_pushed_total":        "Contacts pushed to Ringostat, per tenant.",
	"callrouter_ringostat_push_failures_total":          "Contact pushes to Ringostat that failed, per tenant.",
	"callrouter_ringostat_presence_polls_total":         "Ringostat presence polls that succeeded, per tenant.",
	"callrouter_ringostat_presence_poll_failures_total": "Ringostat presence polls that failed, per tenant.",
	"callrouter_ringostat_reconcile_lag_seconds":        "Time from a call's end to the ingest of a call recovered from Ringostat's call log (its webhook was lost).",
	"callrouter_ringostat_recovered_calls_total":        "Calls recovered from Ringostat's call log whose webhook never arrived, per tenant.",
	"callrouter_console_csrf_refused_total":             "Console requests refused for a missing or wrong CSRF token or origin.",
	"callrouter_console_sign_ins_total":                 "Console sign-ins with an admin token.",
	"callrouter_crm_shared_limit_waits_total":           "CRM calls that waited for a rate-limit slot shared among instances (PostgreSQL).",
	"callrouter_crm_shared_limit_errors_total":          "Database errors taking or releasing a shared CRM rate-limit slot.",
	"callrouter_events_form_known_total":                "Form events whose client the CRM already knew, per tenant.",
	"callrouter_events_unsorted_total":                  "Calls and forms of new clients filed as amoCRM unsorted requests (amo_unsorted), per tenant.",
	"callrouter_ringostat_callbacks_total":              "Automatic call-backs of missed clients, by tenant and result (e.g. cancelled, failed).",
	"callrouter_route_decisions_recorded_total":         "Route decisions written for the routing report.",
	"callrouter_route_decisions_without_call_id_total":  "Route requests without a call id (uniqueid, call_id, uuid…), which the routing report cannot keep.",
	"callrouter_route_decisions_dropped_total":          "Route decisions not kept for the routing report, by reason: buffer_full, call_id_too_long, call_id_not_text, store_error.",
	"callrouter_route_decisions_expired_total":          "Route decisions deleted by the retention sweep (event_retention_days).",
}

// Non-callrouter families (go_*, process_*, flag) are VictoriaMetrics'
// standard process set.
const standardHelp = "Go runtime or process figure (VictoriaMetrics/metrics standard set)."

func init() {
	// # HELP and # TYPE lines: Prometheus and its tooling want them.
	metrics.ExposeMetadata(true)
}

// helpBufs keeps /metrics from allocating a new buffer per scrape.
var helpBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeMetrics writes every metric in Prometheus text format with the text
// of MetricHelp on each `# HELP` line (VictoriaMetrics writes the line with
// the family name only).
func writeMetrics(w io.Writer) {
	buf := helpBufs.Get().(*bytes.Buffer)
	defer helpBufs.Put(buf)
	buf.Reset()
	metrics.WritePrometheus(buf, true)
	out := make([]byte, 0, buf.Len()+buf.Len()/4)
	const prefix = "# HELP "
	for rest := buf.Bytes(); len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		out = append(out, line...)
		if name, ok := bytes.CutPrefix(line, []byte(prefix)); ok && bytes.IndexByte(name, ' ') < 0 {
			out = append(out, ' ')
			out = append(out, helpFor(string(name))...)
		}
		out = append(out, '\n')
	}
	_, _ = w.Write(out)
}

func helpFor(family string) string {
	if h, ok := MetricHelp[family]; ok {
		return h
	}
	if strings.HasPrefix(family, "callrouter_") {
		// A family missing from MetricHelp fails TestEveryMetricIsDocumented;
		// the scrape still carries a valid line meanwhile.
		return "callrouter metric."
	}
	return standardHelp
}
