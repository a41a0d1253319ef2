package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileSluice starts sluice/pagecache once more and saves two CPU
// profiles of the broker, taken from its admin server's /debug/pprof:
// dir/produce.pprof while one client produces 1 KiB records (16
// partitions, acks=all) for the whole profile and dir/fetch.pprof while one consumer reads a
// page-cached 1 GiB topic over and over, and dir/e2e.pprof during the
// end-to-end scenario (1 KiB records at -e2e-rate, linger 0: one Produce
// and one Fetch response per record). Read them with
// `go tool pprof -top <sluice binary> dir/produce.pprof`.
func profileSluice(ctx context.Context, bins binaries, c config, dir string, secs int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	srv, err := startServer(bins, sluicePageCache, c.tmp)
	if err != nil {
		return err
	}
	defer srv.stop()
	if srv.admin == "" {
		return fmt.Errorf("sluice reported no admin listener")
	}
	// during runs work repeatedly until a CPU profile of secs seconds,
	// started first, has been saved to dir/name.
	during := func(name string, work func() error) error {
		saved := make(chan error, 1)
		go func() {
			saved <- savePprof(srv.admin, fmt.Sprintf("profile?seconds=%d", secs), filepath.Join(dir, name))
		}()
		for deadline := time.Now().Add(time.Duration(secs)*time.Second + time.Minute); ; {
			select {
			case err := <-saved:
				return err
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("profile %s not saved", name)
			}
			if err := work(); err != nil {
				return err
			}
		}
	}
	// One produce run outlasts the profile (a few GB go to the data dir,
	// removed when the server stops).
	lim := c.lim
	lim.produceBytes, lim.produceTime = 1<<40, time.Duration(secs+2)*time.Second
	n := 0
	err = during("produce.pprof", func() error {
		s := scenario{Kind: "produce", Size: 1024, Partitions: 16, Acks: "all", Conns: 1, Tag: fmt.Sprint("profile", n)}
		n++
		if _, err := runProduce(ctx, srv, s, lim); err != nil {
			return err
		}
		return deleteTopic(ctx, srv.seeds(), s.topic())
	})
	if err != nil {
		return fmt.Errorf("produce profile: %w", err)
	}
	// The fetch profile reads one 1 GiB topic from the page cache.
	lim.produceBytes, lim.produceTime = 1<<30, time.Minute
	data := scenario{Kind: "produce", Size: 1024, Partitions: 16, Acks: "all", Conns: 1}
	if _, err := runProduce(ctx, srv, data, lim); err != nil {
		return err
	}
	read := scenario{Kind: "consume", Size: 1024, Partitions: 16}
	if err := during("fetch.pprof", func() error { _, err := runConsume(ctx, srv, read, lim); return err }); err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	if err := deleteTopic(ctx, srv.seeds(), data.topic()); err != nil {
		return err
	}
	// The end-to-end profile: one small produce and one fetch per record.
	lim.e2eRecords = int64(lim.e2eRate * float64(secs+2))
	e2e := scenario{Kind: "e2e", Size: 1024, Partitions: 1, Acks: "all"}
	if err := during("e2e.pprof", func() error { _, err := runE2E(ctx, srv, e2e, lim); return err }); err != nil {
		return fmt.Errorf("e2e profile: %w", err)
	}
	return nil
}

// savePprof saves the broker's /debug/pprof/<what> (a profile or trace of
// some seconds) from its admin listener to path.
func savePprof(admin, what, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", admin, what))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", what, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
