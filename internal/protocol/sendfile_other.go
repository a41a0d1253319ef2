//go:build !linux

package protocol

import (
	"errors"
	"net"
)

// sendfileSupported reports whether sendfile is implemented on this system;
// elsewhere Sender copies.
const sendfileSupported = false

func sendfile(*net.TCPConn, Region) (int64, error) {
	return 0, errors.New("protocol: sendfile not supported")
}
