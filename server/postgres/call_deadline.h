// File: server/postgres/call_deadline.h — a client-side deadline on a blocking libpq call.
// When the call still runs at its deadline, its socket is shut down (shutdown(2), never
// closed here), so libpq's blocked read or write fails at once and the connection counts as
// lost. statement_timeout cannot do this (the server enforces it, and its answer is what
// does not arrive), nor can TCP's user timeout and keepalives (they fire only while the
// peer's kernel stops acknowledging): a peer that acknowledges but never answers — a
// partition behind a proxy or a load balancer, a stalled pooler, a frozen server — would
// otherwise hold the call, and the store's mutex with it, for as long as it lasts.
//
// One process-wide thread serves every armed deadline (a few per replica at most).
#pragma once

#include <chrono>
#include <cstdint>

namespace segserve::postgres {

class CallDeadline {
 public:
  // Arms a deadline for the call about to run on socket `fd` (no-op for fd < 0).
  CallDeadline(int fd, std::chrono::steady_clock::duration timeout);
  // Disarms it.
  ~CallDeadline();
  CallDeadline(const CallDeadline&) = delete;
  CallDeadline& operator=(const CallDeadline&) = delete;

  // Whether the deadline passed and the socket was shut down. Valid after Disarm().
  bool fired() const { return fired_; }
  // Disarms now (the destructor does it otherwise); returns fired().
  bool Disarm();

 private:
  uint64_t token_ = 0;
  bool fired_ = false;
};

}  // namespace segserve::postgres
