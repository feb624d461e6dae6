// Package epoll holds what the event loops of core/ws (the server's epoll
// driver) and of cmd/moonchat-bench (the load generator's receive path)
// set up alike: an epoll instance with an eventfd registered on it, which
// another goroutine writes to make the loop's epoll_wait return. Each loop
// keeps its own policy (how it waits, what it registers, how it stops).
package epoll
