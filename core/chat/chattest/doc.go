// Package chattest holds the test doubles of the chat server's seams and a
// harness that runs a real chat.Server for tests of the packages around
// it (core/chat's external tests, core/chat/web, scripting), so that each
// double exists once:
//
//   - History: an in-memory chat.History that keeps the seam's promises
//     (ids grow per room, After reports gaps);
//   - Start: a chat.Server behind an httptest listener, bound to its hooks
//     and shut down when the test ends;
//   - Eventually: polls a condition for what a test must see happen.
//
// core/chat's in-package tests cannot import this package (it imports
// core/chat); they keep their own doubles in core/chat/doubles_test.go.
package chattest
