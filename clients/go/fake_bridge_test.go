package daggersandbox

// fake_bridge_test.go: the test binary doubles as a hostile "bridge" (garbage, crashes, silence)
// when FAKE_BRIDGE_MODE is set: hostile input for the client, not a stand-in for the engine.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

const fakeModeEnv = "FAKE_BRIDGE_MODE"

// runFakeBridge plays the bridge according to mode and exits.
func runFakeBridge(mode string) {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	send := func(s string) {
		_, _ = out.WriteString(s + "\n")
		_ = out.Flush()
	}
	next := func() (id json.RawMessage, method string, params map[string]any, ok bool) {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return nil, "", nil, false
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params map[string]any  `json:"params"`
		}
		_ = json.Unmarshal(line, &m)
		return m.ID, m.Method, m.Params, true
	}
	initOK := func(version string) {
		id, _, _, ok := next()
		if !ok {
			os.Exit(0)
		}
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"serverInfo":{"name":"fake","version":"0"},`+
			`"backends":[],"capabilities":{"maxLineBytes":1048576}}}`, id, version))
	}
	switch mode {
	case "exit-at-start":
		fmt.Fprintln(os.Stderr, "error: simulated failure: no engine configured")
		os.Exit(3)
	case "no-init":
		time.Sleep(10 * time.Minute)
	case "garbage-at-init":
		next()
		send("hello, I am not JSON-RPC")
		time.Sleep(10 * time.Minute) // the client must kill us
	case "old-protocol":
		initOK("0")
		next()
	case "die-mid-call":
		initOK("1")
		id, _, params, _ := next()
		if params["stream"] == true {
			send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"exec/output","params":{"execId":"exec-1","requestId":%s,"stream":"stdout","data":"partial\n"}}`, id))
		}
		fmt.Fprintln(os.Stderr, "thread 'main' panicked: simulated crash in the middle of a call")
		os.Exit(7)
	case "garbage-mid-call":
		initOK("1")
		id, _, _, _ := next()
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":`, id))
		time.Sleep(10 * time.Minute)
	case "bad-shape":
		initOK("1")
		for {
			id, _, _, ok := next()
			if !ok {
				return
			}
			send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":"nonsense"}`, id))
		}
	case "huge-line":
		initOK("1")
		next()
		send(`{"jsonrpc":"2.0","method":"log","params":{"x":"` + strings.Repeat("x", 1<<20) + `"}}`)
		time.Sleep(10 * time.Minute)
	case "silent":
		initOK("1")
		for {
			if _, _, _, ok := next(); !ok {
				return
			}
		}
	case "deaf":
		initOK("1")
		time.Sleep(10 * time.Minute) // reads nothing more, ignores EOF
	case "closes-stdout":
		initOK("1")
		os.Stdout.Close()
		time.Sleep(10 * time.Minute)
	default:
		fmt.Fprintf(os.Stderr, "unknown fake mode %q\n", mode)
		os.Exit(2)
	}
}
