//go:build race

package phone

// raceEnabled shrinks the corpus tests under the race detector, which
// slows phonenumbers' regexps twentyfold and finds nothing in
// single-goroutine comparisons.
const raceEnabled = true
