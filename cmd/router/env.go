package main

import (
	"os"
	"strconv"
	"time"
)

// env, envInt and envDuration read a flag's environment twin. A malformed
// value stops the program: falling back to the default would hide a
// misconfiguration.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	v := env(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		envError(name, v, "an integer")
	}
	return n
}

func envFloat(name string, def float64) float64 {
	v := env(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		envError(name, v, "a number")
	}
	return f
}

func envBool(name string, def bool) bool {
	v := env(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		envError(name, v, "a boolean such as 1 or 0")
	}
	return b
}

func envDuration(name string, def time.Duration) time.Duration {
	v := env(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		envError(name, v, "a duration such as 30s")
	}
	return d
}

func envError(name, value, want string) {
	os.Stderr.WriteString("router: " + name + "=" + strconv.Quote(value) + " is not " + want + "\n")
	os.Exit(2)
}
