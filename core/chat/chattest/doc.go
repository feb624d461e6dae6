// Package chattest holds the test doubles of the chat server's seams and a
// harness that runs a real chat.Server for tests of the packages around
// it (core/chat's external tests, core/chat/web, scripting), so that each
// double exists once:
//
//   - History: an in-memory chat.History that keeps the seam's promises
//     (ids grow per room, After reports gaps);
//   - Start: a chat.Server behind an httptest listener, bound to its hooks
//     and shut down when the test ends;
//   - Client: a third-party (gorilla/websocket) user client that reads
//     and checks frames;
//   - Eventually: polls a condition for what a test must see happen.
//
// core/chat's in-package tests (package chat) cannot import this package,
// which imports core/chat; they keep their own doubles (doubles_test.go,
// helpers_test.go) until they move to package chat_test, as the
// end-to-end tests there already have.
package chattest
