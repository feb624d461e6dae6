package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterConfigErrors (issue 15): each mistake in [cluster] is an
// error naming the key, and a password in nats_url is never repeated.
func TestClusterConfigErrors(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"no scheme", "[cluster]\nnats_url = \"10.0.0.1:4222\"\n",
			[]string{`[cluster] nats_url: "10.0.0.1:4222"`}},
		{"http scheme", "[cluster]\nnats_url = \"http://10.0.0.1:4222\"\n",
			[]string{`[cluster] nats_url: "http://10.0.0.1:4222": the scheme must be nats://, tls://, ws:// or wss://`}},
		{"no port", "[cluster]\nnats_url = \"nats://10.0.0.1\"\n",
			[]string{`[cluster] nats_url: "nats://10.0.0.1": want host:port`}},
		{"second of two bad", "[cluster]\nnats_url = \"nats://a:4222, nats://b:99999\"\n",
			[]string{`[cluster] nats_url: "nats://b:99999": invalid port "99999"`}},
		{"password not repeated", "[cluster]\nnats_url = \"http://moon:s3cret@a:4222\"\n",
			[]string{`"http://***@a:4222"`}},
		{"cluster without store", "[store]\npath = \"\"\n[cluster]\nnats_url = \"nats://a:4222\"\n",
			[]string{`[cluster] nats_url: a cluster node keeps its replica of the rooms in its store: set [store] path`}},
		{"bad node", "[cluster]\nnode = \"node one\"\n",
			[]string{`[cluster] node: "node one": want 1-64 characters`}},
		{"bad stream", "[cluster]\nstream = \"moon.chat\"\n",
			[]string{`[cluster] stream: "moon.chat": want 1-64 characters from A-Z a-z 0-9 "-" and "_"`}},
		{"empty stream", "[cluster]\nstream = \"\"\n",
			[]string{`[cluster] stream: "": want`}},
		{"replicas", "[cluster]\nreplicas = 7\n",
			[]string{`[cluster] replicas: must be between 1 and 5, got 7`}},
		{"creds and nkey", "[cluster]\ncreds = \"a.creds\"\nnkey = \"a.nk\"\n",
			[]string{`[cluster] creds: set creds or nkey, not both`}},
		{"cert without key", "[cluster]\ntls_cert = \"c.pem\"\n",
			[]string{`[cluster] tls_cert: tls_cert and tls_key go together`}},
		{"publish_timeout zero", "[cluster]\npublish_timeout = \"0s\"\n",
			[]string{`[cluster] publish_timeout: must be between 1ms and 1m0s, got "0s"`}},
		{"publish_timeout long", "[cluster]\npublish_timeout = \"3m\"\n",
			[]string{`[cluster] publish_timeout: must be between 1ms and 1m0s, got "3m0s"`}},
		{"unknown key", "[cluster]\nnats_urls = \"nats://a:4222\"\n",
			[]string{`unknown key [cluster] nats_urls (did you mean nats_url?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tt.toml))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error repeats the password: %q", err)
			}
		})
	}
}

// TestClusterConfigLoads: a full [cluster] section loads, its relative
// file paths are taken relative to the config file, and it maps onto
// cluster.Config unchanged, with [store] retention.
func TestClusterConfigLoads(t *testing.T) {
	p := writeConfig(t, `
[store]
max_age = "720h"
max_per_room = 1000
[cluster]
nats_url = "nats://moon:pw@10.0.0.1:4222, tls://10.0.0.2:4222"
node = "node-a"
stream = "chat_1"
replicas = 3
creds = "nats/moon.creds"
tls_cert = "/etc/moonchat/client.pem"
tls_key = "client.key"
tls_ca = "ca.pem"
publish_timeout = "2s"
`)
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	lc := clusterLogConfig(cfg, nil)
	if lc.URL != "nats://moon:pw@10.0.0.1:4222,tls://10.0.0.2:4222" || lc.Node != "node-a" || lc.Stream != "chat_1" ||
		lc.Replicas != 3 || lc.PublishTimeout != 2*time.Second ||
		lc.MaxAge != 720*time.Hour || lc.MaxPerRoom != 1000 {
		t.Errorf("cluster.Config %+v", lc)
	}
	if lc.CredsFile != filepath.Join(dir, "nats/moon.creds") || lc.NKeyFile != "" ||
		lc.TLSCert != "/etc/moonchat/client.pem" || lc.TLSKey != filepath.Join(dir, "client.key") || lc.TLSCA != filepath.Join(dir, "ca.pem") {
		t.Errorf("cluster.Config files %+v (config in %s)", lc, dir)
	}
	// node "" is the host name.
	cfg.Cluster.Node = ""
	if n := clusterLogConfig(cfg, nil).Node; n == "" {
		t.Error("node \"\" gave no name")
	}
}
