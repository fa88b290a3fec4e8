//go:build !race

package httpapi

// raceEnabled is set under the race detector, where sync.Pool drops items
// on purpose, so allocation counts through a pool are not meaningful.
const raceEnabled = false
