package clustertest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
)

// CLI runs the cluster's sluice binary as a client (`sluice <args>`)
// against the running nodes (-X brokers= their Kafka addresses), and
// returns its stdout, its stderr and its exit code (-1 if it could not
// run; err says why).
func (c *Cluster) CLI(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	args = append(append([]string{}, args...), "-X", "brokers="+strings.Join(c.Seeds(), ","))
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0, nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return out.String(), errb.String(), ee.ExitCode(), nil
	}
	return out.String(), errb.String(), -1, err
}
