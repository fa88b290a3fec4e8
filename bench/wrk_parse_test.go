package bench_test

import "testing"

// wrk's report as Debian's wrk 4.1 prints it.
const wrkSample = `Running 2s test @ http://127.0.0.1:40123/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  612.11us  14.03ms   79.31%
    Req/Sec    31.20k     2.11k   35.40k    71.00%
  124153 requests in 2.00s, 14.21MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 12
Requests/sec:  62051.17
Transfer/sec:      7.10MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.Throughput != 62051.17 || r.Non2xx != 12 || r.Latency != "1.02ms 612.11us 14.03ms 79.31%" ||
		r.SocketErrs != "connect 0, read 3, write 0, timeout 0" {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrk("Running 1s test\n"); err == nil {
		t.Fatal("output without Requests/sec parsed")
	}
}
