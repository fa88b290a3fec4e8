package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/callrouter/callrouter/internal/notify"
	"github.com/callrouter/callrouter/internal/store"
	"github.com/callrouter/callrouter/internal/store/postgres"
	"github.com/callrouter/callrouter/internal/store/sqlite"
)

// newInstanceID names this process among the instances sharing the
// database: the host name and a random suffix, unique even for two
// processes on one host, in the characters River accepts in a client id.
func newInstanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, host)
	if host == "" {
		host = "router"
	}
	if len(host) > 60 {
		host = host[:60]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return host + "_" + hex.EncodeToString(b)
}

// openBus returns the change bus of the store's database: LISTEN/NOTIFY on
// PostgreSQL, the polled change log on SQLite.
func openBus(ctx context.Context, st store.Store, instance string, log *zap.Logger) (notify.Bus, error) {
	cfg := notify.Config{Origin: instance, Log: log}
	switch db := st.(type) {
	case *postgres.DB:
		return notify.NewPostgres(ctx, db.Pool(), cfg)
	case *sqlite.DB:
		return notify.NewPoller(db, cfg)
	}
	return nil, fmt.Errorf("notify: no change bus for store %T", st)
}
