//go:build race

package broker

// raceEnabled: the race detector is on. sync.Pool then drops pooled items
// at random, so allocation counts vary by a few from run to run.
const raceEnabled = true
