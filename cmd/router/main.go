// Command router is callrouter: `router serve` runs the server, `router
// migrate` applies the store's migrations, `router admin ...` calls the admin
// API.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: router <command> [flags]

commands:
  serve     run the server (flags: router serve -h)
  migrate   apply the store's migrations and exit
  admin     call the admin API (router admin help)
  version   print the version
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(args)
	case "migrate":
		err = runMigrate(args)
	case "admin":
		err = runAdmin(args, os.Stdout)
	case "version":
		fmt.Println(version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "router: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}
