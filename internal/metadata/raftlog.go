package metadata

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp/raft's hclog output to slog. raft logs its
// routine state changes (entering follower/leader state, snapshots) at Info;
// they are demoted to Debug so a broker start prints nothing from raft.
// Warn and Error pass through, except the warnings a lone voter raises on
// every start (it "misses" a leader's heartbeat before electing itself).
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	args    []any
	routine map[string]bool // Warn messages demoted to Debug
}

// singleVoterRoutine are raft warnings that are routine for a one-voter
// quorum. A multi-voter configuration must not demote them.
var singleVoterRoutine = map[string]bool{
	"heartbeat timeout reached, starting election": true,
	// With 20 ms timeouts a lone voter's first election can outlast its
	// timeout on a loaded machine; it simply votes for itself again.
	"Election timeout reached, restarting election": true,
}

// clusterRoutine are raft warnings that are routine in a larger quorum: a
// follower that joins or lags logs the first while the leader walks back to
// its log's end, and a non-voter the others whenever it has no leader.
var clusterRoutine = map[string]bool{
	"failed to get previous log":                          true,
	"not part of stable configuration, aborting election": true,
	"no known peers, aborting election":                   true,
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger, routine map[string]bool) hclog.Logger {
	return &hclogAdapter{l: l.With("component", "raft"), name: "raft", routine: routine}
}

func (a *hclogAdapter) level(l hclog.Level, msg string) slog.Level {
	switch l {
	case hclog.Warn:
		if a.routine[msg] {
			return slog.LevelDebug
		}
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelDebug
	}
}

func (a *hclogAdapter) Log(l hclog.Level, msg string, args ...any) {
	lv := a.level(l, msg)
	ctx := context.Background()
	if !a.l.Enabled(ctx, lv) {
		return
	}
	a.l.Log(ctx, lv, msg, fixArgs(args)...)
}

// fixArgs makes raft's values printable: hclog callers pass *Raft and
// other fmt.Stringers, which slog would print with %+v.
func fixArgs(args []any) []any {
	out := make([]any, len(args))
	for i, v := range args {
		if s, ok := v.(fmt.Stringer); ok && i%2 == 1 {
			out[i] = s.String()
			continue
		}
		out[i] = v
	}
	return out
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return false }
func (a *hclogAdapter) IsDebug() bool { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *hclogAdapter) IsWarn() bool  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.l.Enabled(context.Background(), slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{l: a.l.With(fixArgs(args)...), name: a.name, args: append(append([]any(nil), a.args...), args...), routine: a.routine}
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return a.ResetNamed(n)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: a.l.With("logger", name), name: name, args: a.args, routine: a.routine}
}

func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsWarn():
		return hclog.Warn
	case a.IsError():
		return hclog.Error
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *stdlog.Logger {
	return stdlog.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.Log(hclog.Info, string(trimNewline(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
