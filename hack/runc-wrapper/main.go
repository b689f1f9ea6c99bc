// runc-wrapper is the runtime binary of the host's containerd. Our machines'
// capability bounding set lacks CAP_SYS_RESOURCE, which breaks two things
// runc does for Kubernetes:
//   - a privileged container asks for every capability, and fails with
//     "unable to apply caps: operation not permitted";
//   - the kubelet gives pods (the pause sandbox: -998) an oom_score_adj
//     lower than runc's own, which only CAP_SYS_RESOURCE may set, and runc's
//     init dies with "can't get final child's PID from pipe: EOF".
//
// The wrapper removes the capabilities outside the bounding set and raises
// oomScoreAdj to the lowest value it may set, editing the bundle's
// config.json for create/run and the process file for exec, then execs runc
// with the arguments unchanged.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// boundingSet reads the capabilities this process may ever hold.
func boundingSet() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "CapBnd:") {
			return strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:")), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapBnd in /proc/self/status")
}

var capNumbers = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
	"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
	"CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
	"CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
	"CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
	"CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
	"CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

// runc's global flags that take a separate value, which must not be taken for
// the command name.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true}

// filterCaps drops every capability outside the bounding set from the
// "capabilities" object of an OCI process; it reports whether it changed.
func filterCaps(process map[string]any, bnd uint64) bool {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return false
	}
	changed := false
	for kind, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			name, _ := c.(string)
			if n, known := capNumbers[name]; known && bnd&(1<<n) == 0 {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[kind] = kept
	}
	return changed
}

// ownOOMScoreAdj is the lowest oom_score_adj a child may get without
// CAP_SYS_RESOURCE.
func ownOOMScoreAdj() (int, bool) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return v, err == nil
}

// clampOOMScoreAdj raises a process's oomScoreAdj to the floor it may set.
func clampOOMScoreAdj(process map[string]any) bool {
	want, ok := process["oomScoreAdj"].(float64)
	if !ok {
		return false
	}
	floor, ok := ownOOMScoreAdj()
	if !ok || int(want) >= floor {
		return false
	}
	process["oomScoreAdj"] = floor
	return true
}

func rewrite(path string, processAtTop bool, bnd uint64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return err
	}
	process := doc
	if !processAtTop {
		p, ok := doc["process"].(map[string]any)
		if !ok {
			return nil
		}
		process = p
	}
	capsChanged := bnd != ^uint64(0) && filterCaps(process, bnd)
	if oom := clampOOMScoreAdj(process); !capsChanged && !oom {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func main() {
	real := os.Getenv("RUNC_WRAPPER_RUNC")
	if real == "" {
		real = "/usr/sbin/runc"
	}
	args := os.Args[1:]
	bnd, err := boundingSet()
	if err == nil {
		command, bundle, process := "", ".", ""
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "--bundle" || a == "-b":
				if i+1 < len(args) {
					bundle = args[i+1]
					i++
				}
			case strings.HasPrefix(a, "--bundle="):
				bundle = strings.TrimPrefix(a, "--bundle=")
			case a == "--process" || a == "-p":
				if i+1 < len(args) {
					process = args[i+1]
					i++
				}
			case strings.HasPrefix(a, "--process="):
				process = strings.TrimPrefix(a, "--process=")
			case command == "" && globalWithValue[a]:
				i++ // skip the global flag's value
			case command == "" && !strings.HasPrefix(a, "-"):
				command = a
			}
		}
		switch command {
		case "create", "run":
			if err := rewrite(filepath.Join(bundle, "config.json"), false, bnd); err != nil {
				fmt.Fprintln(os.Stderr, "runc-wrapper:", err)
			}
		case "exec":
			if process != "" {
				if err := rewrite(process, true, bnd); err != nil {
					fmt.Fprintln(os.Stderr, "runc-wrapper:", err)
				}
			}
		}
	}
	argv := append([]string{real}, args...)
	if err := syscall.Exec(real, argv, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "runc-wrapper: exec", real, err)
		os.Exit(127)
	}
}
