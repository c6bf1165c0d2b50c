#include "tests/testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace segserve::testing {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat("tcp proxy: ", what, ": ", std::strerror(errno)));
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// One forwarded connection: bytes read from one end wait in the other end's buffer until
// written, and an end is read only while its buffer is empty (a slow reader slows the writer).
struct Link {
  int client = -1;
  int server = -1;
  std::string to_client;
  std::string to_server;
  bool closed = false;

  void Close() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
    client = server = -1;
    closed = true;
  }
};

// Reads what `from` has into `buffer`; false on end of stream or an error.
bool ReadInto(int from, std::string& buffer) {
  char chunk[65536];
  const ssize_t n = ::read(from, chunk, sizeof(chunk));
  if (n > 0) {
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EINTR);
}

// Writes as much of `buffer` to `to` as it takes; false on an error.
bool Flush(int to, std::string& buffer) {
  while (!buffer.empty()) {
    const ssize_t n = ::send(to, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buffer.erase(0, static_cast<size_t>(n));
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }
  return true;
}

int ConnectUnix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  SetNonBlocking(fd);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(const std::string& unix_socket) {
  std::unique_ptr<TcpProxy> proxy(new TcpProxy());
  proxy->unix_socket_ = unix_socket;
  proxy->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (proxy->listen_fd_ < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno("bind");
  }
  if (::listen(proxy->listen_fd_, 128) != 0) return Errno("listen");
  socklen_t len = sizeof(addr);
  if (::getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("getsockname");
  }
  proxy->port_ = ntohs(addr.sin_port);
  SetNonBlocking(proxy->listen_fd_);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return Errno("pipe2");
  proxy->wake_read_ = wake[0];
  proxy->wake_write_ = wake[1];
  proxy->thread_ = std::thread([p = proxy.get()] { p->Loop(); });
  return proxy;
}

TcpProxy::~TcpProxy() {
  if (thread_.joinable()) {
    SetMode(Mode::kStop);
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_read_, wake_write_}) {
    if (fd >= 0) ::close(fd);
  }
}

void TcpProxy::Partition() { SetMode(Mode::kPartition); }
void TcpProxy::Reset() { SetMode(Mode::kReset); }
void TcpProxy::Heal() { SetMode(Mode::kForward); }

void TcpProxy::SetMode(Mode mode) {
  mode_.store(mode);
  const char byte = 1;
  (void)!::write(wake_write_, &byte, 1);
}

void TcpProxy::Loop() {
  std::vector<Link> links;
  while (true) {
    const Mode mode = mode_.load();
    if (mode == Mode::kStop) break;
    if (mode == Mode::kReset) {
      for (Link& link : links) link.Close();
    }
    links.erase(
        std::remove_if(links.begin(), links.end(), [](const Link& link) { return link.closed; }),
        links.end());

    // What to wait for: the wake pipe always; the rest only while not partitioned.
    std::vector<pollfd> fds = {{wake_read_, POLLIN, 0}};
    if (mode != Mode::kPartition) {
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const Link& link : links) {
        fds.push_back({link.client,
                       static_cast<short>((link.to_server.empty() ? POLLIN : 0) |
                                          (link.to_client.empty() ? 0 : POLLOUT)),
                       0});
        fds.push_back({link.server,
                       static_cast<short>((link.to_client.empty() ? POLLIN : 0) |
                                          (link.to_server.empty() ? 0 : POLLOUT)),
                       0});
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (::read(wake_read_, drain, sizeof(drain)) > 0) {
      }
      continue;  // the mode may have changed: this round's other events wait for the next
    }
    if (mode == Mode::kPartition) continue;
    if (fds[1].revents & POLLIN) {
      while (true) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        accepted_.fetch_add(1);
        const int server = mode == Mode::kReset ? -1 : ConnectUnix(unix_socket_);
        if (server < 0) {
          ::close(client);
          continue;
        }
        Link link;
        link.client = client;
        link.server = server;
        links.push_back(std::move(link));
      }
    }
    // Links added above have no entry in `fds`: they are served from the next round.
    for (size_t k = 0; 3 + 2 * k < fds.size(); ++k) {
      Link& link = links[k];
      const short client_events = fds[2 + 2 * k].revents;
      const short server_events = fds[3 + 2 * k].revents;
      bool ok = true;
      if (client_events & (POLLIN | POLLHUP | POLLERR)) ok = ReadInto(link.client, link.to_server);
      if (ok && (server_events & (POLLIN | POLLHUP | POLLERR))) {
        ok = ReadInto(link.server, link.to_client);
      }
      if (ok) ok = Flush(link.server, link.to_server) && Flush(link.client, link.to_client);
      if (!ok) link.Close();
    }
  }
  for (Link& link : links) link.Close();
}

}  // namespace segserve::testing
