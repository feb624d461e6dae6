package scripting

import (
	"context"
	"reflect"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/defaults"
)

// defaultRig runs the built-in scripts (defaults/scripts).
func defaultRig(t testing.TB) *rig {
	t.Helper()
	return newRigOpts(t, Options{FS: defaults.Scripts()})
}

func TestDefaultScripts(t *testing.T) {
	tests := []struct {
		name  string
		user  chat.User
		text  string
		want  chat.MessageResult
		calls []hostCall
	}{
		{"plain message passes", alice, "hello there", chat.MessageResult{}, nil},
		{"quit", alice, "quit", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Broadcast", Room: "lobby", Text: "alice has quit"},
			{Method: "Kick", ID: 1, Text: "goodbye"},
		}},
		{"quit with spaces and case", bob, " QUIT ", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Broadcast", Room: "lobby", Text: "bob has quit"},
			{Method: "Kick", ID: 2, Text: "goodbye"},
		}},
		{"quit inside a sentence is chat", alice, "I quit smoking", chat.MessageResult{}, nil},
		{"/quit with message", alice, "/quit see you", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Broadcast", Room: "lobby", Text: "alice has quit (see you)"},
			{Method: "Kick", ID: 1, Text: "goodbye"},
		}},
		{"/nick", alice, "/nick alicia", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Rename", ID: 1, Text: "alicia"},
		}},
		{"/nick taken", alice, "/nick bob", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Rename", ID: 1, Text: "bob"},
			{Method: "Send", ID: 1, Text: "that name is taken or looks like one in use; you are now bob-2"},
		}},
		{"/nick refused", alice, "/nick a:b", chat.MessageResult{Drop: true, Reason: "cannot change your name: bad name"}, nil},
		{"/nick usage", alice, "/nick", chat.MessageResult{Drop: true, Reason: "usage: /nick NAME"}, nil},
		{"/who", alice, "/who", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Send", ID: 1, Text: "2 in lobby: alice, bob"},
		}},
		{"/me", bob, "/me waves", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Action", ID: 2, Text: "waves"},
		}},
		{"/me usage", bob, "/me", chat.MessageResult{Drop: true, Reason: "usage: /me ACTION"}, nil},
		// Not a moderator (no room rules): the moderators' commands are
		// not listed (TestHelpHidesModeratorCommands).
		{"/help", carol, "/help", chat.MessageResult{Drop: true}, []hostCall{
			{Method: "Send", ID: 3, Text: "/delete ID: delete your message (moderators: any)"},
			{Method: "Send", ID: 3, Text: "/help: list the commands"},
			{Method: "Send", ID: 3, Text: "/ignore [NICK]: hide NICK's messages from you (alone: list)"},
			{Method: "Send", ID: 3, Text: "/me ACTION: tell the room what you are doing"},
			{Method: "Send", ID: 3, Text: "/msg NICK text: send NICK a direct message"},
			{Method: "Send", ID: 3, Text: "/nick NAME: change your name"},
			{Method: "Send", ID: 3, Text: "/quit [message]: leave the chat"},
			{Method: "Send", ID: 3, Text: "/slow [SECONDS|off]: show or (moderators) set slow mode"},
			{Method: "Send", ID: 3, Text: "/topic [TEXT|-]: show or (moderators) set or clear the topic"},
			{Method: "Send", ID: 3, Text: "/unignore NICK: show NICK's messages again"},
			{Method: "Send", ID: 3, Text: "/who: list the people in this room"},
		}},
		{"unknown command", alice, "/dance", chat.MessageResult{Drop: true, Reason: "unknown command /dance — try /help", Code: "unknown_command"}, nil},
		{"word filter", alice, "Darn it, what the HECK", chat.MessageResult{Text: "**** it, what the ****", Replace: true}, nil},
		{"word filter whole words only", alice, "darnation", chat.MessageResult{}, nil},
	}
	r := defaultRig(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.host.take()
			got := r.say(tt.user, tt.text)
			if got != tt.want {
				t.Errorf("result %+v, want %+v", got, tt.want)
			}
			if calls := r.host.take(); !reflect.DeepEqual(calls, tt.calls) {
				t.Errorf("calls %v\nwant  %v", calls, tt.calls)
			}
			// Restore names changed by /nick.
			r.host.mu.Lock()
			r.host.users = []chat.User{alice, bob, carol}
			r.host.mu.Unlock()
		})
	}
	if t.Failed() {
		t.Log(r.log.String())
	}
}

func TestDefaultWelcome(t *testing.T) {
	r := defaultRig(t)
	if got := r.e.Join(context.Background(), alice); got != (chat.JoinResult{}) {
		t.Fatalf("join result %+v", got)
	}
	want := []hostCall{{Method: "Send", ID: 1, Text: "welcome to lobby! /help lists the commands; type quit to leave"}}
	if calls := r.host.take(); !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

func TestDefaultCommandsList(t *testing.T) {
	var names []string
	for _, c := range defaultRig(t).e.Commands() {
		names = append(names, c.Name)
	}
	if want := []string{"ban", "bans", "delete", "help", "ignore", "kick", "me", "msg", "mute", "nick", "quit", "slow", "topic", "unban", "unignore", "unmute", "who"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("commands %v, want %v", names, want)
	}
}
