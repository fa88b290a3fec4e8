// Command router is callrouter: `router serve` runs the server, `router
// migrate` applies the store's migrations, `router admin ...` calls the admin
// API, `router version` prints the version. Every command and subcommand
// answers -h and --help with its usage on stdout and exit status 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=..." (the
// Makefile's build target takes it from git describe).
var version = "dev"

// command is one of router's commands: its name, a one-line help, and the
// function that parses its arguments (with a flag set of its own) and
// runs it, printing help to stdout.
type command struct {
	name string
	help string
	run  func(args []string, stdout, stderr io.Writer) error
}

// commands lists router's commands in the order usage shows them. It is a
// function, not a variable, because the help command prints the list.
func commands() []command {
	return []command{
		{"serve", "run the server (router serve -h lists its flags)", func(args []string, stdout, stderr io.Writer) error {
			return runServe(args, stdout, stderr)
		}},
		{"migrate", "apply the store's migrations (River's included) and exit", func(args []string, stdout, _ io.Writer) error {
			return runMigrate(args, stdout)
		}},
		{"admin", "call the admin API (router admin help)", func(args []string, stdout, _ io.Writer) error {
			return runAdmin(args, stdout)
		}},
		{"version", "print the version", func(args []string, stdout, _ io.Writer) error {
			return runVersion(args, stdout)
		}},
		{"help", "print this help", func(_ []string, stdout, _ io.Writer) error {
			fmt.Fprint(stdout, usage())
			return nil
		}},
	}
}

// usage is router's top-level help.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: router <command> [flags]\n       router --version\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.help)
	}
	b.WriteString("\nEvery command answers -h with its own flags.\n")
	return b.String()
}

// usageError is a mistake in the command line: exit status 2, as flag
// parsing errors have.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// parseFlags parses args with fs, which prints nothing itself: -h and
// --help print usage and fs's flags to stdout and return flag.ErrHelp (exit
// 0); a bad flag returns a usageError naming it and where to read the
// flags.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printFlags(fs, usage, stdout)
		return flag.ErrHelp
	case err != nil:
		return usageError{fmt.Errorf("%s: %w (%s -h lists the flags)", fs.Name(), err, fs.Name())}
	}
	return nil
}

// printFlags prints usage and then fs's flags with their defaults.
func printFlags(fs *flag.FlagSet, usage string, w io.Writer) {
	fmt.Fprint(w, usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// runVersion prints the version.
func runVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("router version", flag.ContinueOnError)
	if err := parseFlags(fs, args, "usage: router version\n\nprints the version the binary was built as (git describe; \"dev\" without the Makefile)\n", stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(stdout, version)
	return nil
}

// run runs router with args (without the program name) and returns its
// exit status: 0 on success and for help, 2 for a mistake in the command
// line, 1 when the command failed.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	case "-version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue usageError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintln(stderr, "router:", err)
			return 2
		default:
			fmt.Fprintln(stderr, "router:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "router: unknown command %q\n\n%s", args[0], usage())
	return 2
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
