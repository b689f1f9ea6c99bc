// kind-cni is this project's stand-in for kind's kindnetd, which is not
// published on the Go module proxy (our only source: no registry is
// reachable).  It runs as kind's "kindnet" DaemonSet (the manifest kind's
// node-image builder writes, unchanged) under kindnetd's image name, and does
// the part of kindnetd a kind cluster needs:
//
//   - writes /etc/cni/net.d/10-kindnet.conflist for its node: the ptp plugin
//     with host-local IPAM on the node's podCIDR (as kindnetd does), with
//     ipMasq so pods reach addresses outside the node, and portmap;
//   - routes every other node's podCIDR via that node's InternalIP.
//
// It talks to the API server with the pod's service-account token, at
// CONTROL_PLANE_ENDPOINT (kind patches it in, so no Service is needed before
// kube-proxy runs) or the in-cluster address.  No network policies, no IPv6.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

const (
	saDir    = "/var/run/secrets/kubernetes.io/serviceaccount"
	confDir  = "/etc/cni/net.d"
	confFile = confDir + "/10-kindnet.conflist"
)

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR  string   `json:"podCIDR"`
			PodCIDRs []string `json:"podCIDRs"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

func apiServer() string {
	if ep := os.Getenv("CONTROL_PLANE_ENDPOINT"); ep != "" {
		return "https://" + ep
	}
	return "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
}

func client() (*http.Client, error) {
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

func listNodes(c *http.Client, server string) (*nodeList, error) {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", server+"/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /api/v1/nodes: %s", resp.Status)
	}
	var nl nodeList
	if err := json.NewDecoder(resp.Body).Decode(&nl); err != nil {
		return nil, err
	}
	return &nl, nil
}

func ipv4CIDR(podCIDR string, podCIDRs []string) string {
	for _, c := range append([]string{podCIDR}, podCIDRs...) {
		if ip, _, err := net.ParseCIDR(c); err == nil && ip.To4() != nil {
			return c
		}
	}
	return ""
}

func mtu() int {
	// hostNetwork: the node's interface towards the other nodes.
	if b, err := os.ReadFile("/sys/class/net/eth0/mtu"); err == nil {
		var m int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &m); err == nil && m > 0 {
			return m
		}
	}
	return 1500
}

func conflist(cidr string) []byte {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": true,
				"mtu":    mtu(),
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"ranges":  []any{[]any{map[string]any{"subnet": cidr}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return append(b, '\n')
}

func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

func sync(c *http.Client, server, hostIP string, routes map[string]string) error {
	nl, err := listNodes(c, server)
	if err != nil {
		return err
	}
	for _, n := range nl.Items {
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" && net.ParseIP(a.Address).To4() != nil {
				ip = a.Address
			}
		}
		cidr := ipv4CIDR(n.Spec.PodCIDR, n.Spec.PodCIDRs)
		if cidr == "" || ip == "" {
			continue
		}
		if ip == hostIP {
			changed, err := writeIfChanged(confFile, conflist(cidr))
			if err != nil {
				return err
			}
			if changed {
				log.Printf("wrote %s for %s (podCIDR %s)", confFile, n.Metadata.Name, cidr)
			}
			continue
		}
		if routes[cidr] == ip {
			continue
		}
		out, err := exec.Command("ip", "route", "replace", cidr, "via", ip).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip route replace %s via %s: %v: %s", cidr, ip, err, out)
		}
		routes[cidr] = ip
		log.Printf("route %s via %s (%s)", cidr, ip, n.Metadata.Name)
	}
	return nil
}

func main() {
	hostIP := os.Getenv("HOST_IP")
	if hostIP == "" {
		log.Fatal("HOST_IP is not set")
	}
	c, err := client()
	if err != nil {
		log.Fatal(err)
	}
	server := apiServer()
	log.Printf("kind-cni on %s, API server %s", hostIP, server)
	routes := map[string]string{}
	for {
		if err := sync(c, server, hostIP, routes); err != nil {
			log.Print(err)
			time.Sleep(2 * time.Second)
			continue
		}
		time.Sleep(10 * time.Second)
	}
}
