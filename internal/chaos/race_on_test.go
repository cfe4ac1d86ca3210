//go:build race

package chaos_test

// raceEnabled builds the server with the race detector when the tests run with -race,
// so that the chaos also hunts data races in the server.
const raceEnabled = true
