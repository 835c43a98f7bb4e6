// Client-facing TLS: a TLS client is served; a plain client on the TLS port is dropped and the
// proxy keeps serving.
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/use_future.hpp>

#include "proxy_fixture.hpp"
#include "support/test_pki.hpp"

namespace respite::test {
namespace {

class proxy_tls : public proxy_fixture {
  protected:
    // A redis-server that also listens with TLS on tls_port (certificate from pki_).
    redis_server_options tls_server_options(std::uint16_t tls_port) const {
        redis_server_options o;
        o.config = {{"tls-port", std::to_string(tls_port)},
                    {"tls-cert-file", pki_.file("server.crt")},
                    {"tls-key-file", pki_.file("server.key")},
                    {"tls-ca-cert-file", pki_.file("ca.crt")},
                    {"tls-auth-clients", "no"}};
        return o;
    }
    test_pki pki_;
};

TEST_F(proxy_tls, tls_clients_are_served_and_plain_bytes_are_refused) {
    start(proxy::mode::dual_write, [&](proxy::proxy_config& c) {
        c.tls_cert_file = pki_.file("server.crt");
        c.tls_key_file = pki_.file("server.key");
    });
    auto cfg = client_config();
    cfg.connection.tls.enabled = true;
    cfg.connection.tls.ca_file = pki_.file("ca.crt");
    cfg.connection.tls.server_name = "localhost";
    {
        client::sync_client c(cfg);
        auto r = c.command("SET", "over-tls", "yes");
        ASSERT_TRUE(r.has_value()) << r.error().message();
        EXPECT_EQ(r->str(), "OK");
        client::request pipeline;
        for (int i = 0; i < 1000; ++i)
            pipeline.push("INCR", "tls-counter");
        auto p = c.exec(std::move(pipeline));
        ASSERT_TRUE(p.has_value());
        EXPECT_EQ(p->back().integer(), 1000);
    }
    EXPECT_EQ(primary_.cli({"GET", "over-tls"}), "yes");
    EXPECT_TRUE(converged());
    // Plain RESP on the TLS port: the handshake fails, the connection is closed.
    raw_conn plain(proxy_->port());
    plain.send("*1\r\n$4\r\nPING\r\n");
    EXPECT_TRUE(plain.closed_by_peer());
    // A client that trusts another CA is refused by its own verification.
    auto wrong = cfg;
    wrong.connection.tls.ca_file = pki_.file("other.crt");
    wrong.connection.connect_timeout = std::chrono::milliseconds(500);
    wrong.connection.command_timeout = std::chrono::milliseconds(1000);
    client::sync_client bad(wrong);
    EXPECT_FALSE(bad.command("PING").has_value());
    // Still serving.
    client::sync_client again(cfg);
    EXPECT_TRUE(again.command("PING").has_value());
}

// Over max clients a TLS client gets Redis's refusal after the handshake (it was closed with no
// word: it could not tell a full proxy from a broken one).
TEST_F(proxy_tls, a_tls_client_over_max_clients_is_told_so) {
    start(proxy::mode::primary_only, [&](proxy::proxy_config& c) {
        c.tls_cert_file = pki_.file("server.crt");
        c.tls_key_file = pki_.file("server.key");
        c.max_clients = 1;
        c.threads = 1;
    });
    auto cfg = client_config();
    cfg.connection.tls.enabled = true;
    cfg.connection.tls.ca_file = pki_.file("ca.crt");
    cfg.connection.tls.server_name = "localhost";
    client::sync_client first(cfg);
    ASSERT_TRUE(first.command("PING").has_value());
    asio::io_context ioc;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_none);
    asio::ssl::stream<asio::ip::tcp::socket> second(ioc, ctx);
    second.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), proxy_->port()});
    second.handshake(asio::ssl::stream_base::client);
    std::string got(64, '\0');
    std::error_code ec;
    const auto n = asio::read(second, asio::buffer(got), asio::transfer_at_least(10), ec);
    got.resize(n);
    EXPECT_EQ(got, "-ERR max number of clients reached\r\n");
    EXPECT_TRUE(first.command("PING").has_value());
}

TEST_F(proxy_tls, a_bad_certificate_path_is_a_clear_start_error) {
    auto cfg = config(proxy::mode::primary_only);
    cfg.listen_port = 0;
    cfg.admin_host.clear();
    cfg.tls_cert_file = "/nonexistent/cert.pem";
    cfg.tls_key_file = "/nonexistent/key.pem";
    proxy::proxy_server p(cfg);
    auto r = p.start();
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("--tls-cert"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace respite::test

namespace respite::test {
namespace {

TEST_F(proxy_tls, backends_can_be_reached_over_tls) {
    const auto tls_port = free_port();
    redis_server tls_primary(tls_server_options(tls_port));
    start(proxy::mode::dual_write, [&](proxy::proxy_config& c) {
        c.primary.connection.port = tls_port;
        c.primary.connection.tls.enabled = true;
        c.primary.connection.tls.ca_file = pki_.file("ca.crt");
        c.primary.connection.tls.server_name = "localhost";
    });
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", "k"}), "$1\r\nv\r\n");
    EXPECT_EQ(tls_primary.cli({"GET", "k"}), "v");
    EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "k"}) == "v"; }));
    // Pub/Sub through the hub's TLS connection.
    raw_conn sub(proxy_->port());
    EXPECT_EQ(sub.call({"SUBSCRIBE", "ch"}), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    EXPECT_EQ(c.call({"PUBLISH", "ch", "hi"}), ":1\r\n");
    EXPECT_EQ(sub.frame(), "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
}

TEST_F(proxy_tls, a_backend_certificate_that_does_not_verify_is_not_used) {
    const auto tls_port = free_port();
    redis_server tls_primary(tls_server_options(tls_port));
    start(proxy::mode::primary_only, [&](proxy::proxy_config& c) {
        c.primary.connection.port = tls_port;
        c.primary.connection.tls.enabled = true;
        c.primary.connection.tls.ca_file = pki_.file("other.crt");  // the wrong CA
        c.primary.connection.tls.server_name = "localhost";
    });
    raw_conn c(proxy_->port());
    const auto r = c.call({"SET", "k", "v"});
    EXPECT_EQ(r.substr(0, 10), "-ERR proxy") << r;
    EXPECT_EQ(r.find(std::to_string(tls_port)), std::string::npos) << r;
    EXPECT_EQ(tls_primary.cli({"EXISTS", "k"}), "0");
}

TEST_F(proxy_tls, client_certificates_are_required_with_a_client_ca) {
    start(proxy::mode::dual_write, [&](proxy::proxy_config& c) {
        c.tls_cert_file = pki_.file("server.crt");
        c.tls_key_file = pki_.file("server.key");
        c.tls_client_ca_file = pki_.file("ca.crt");
    });
    auto cfg = client_config();
    cfg.connection.tls.enabled = true;
    cfg.connection.tls.ca_file = pki_.file("ca.crt");
    cfg.connection.tls.server_name = "localhost";
    cfg.connection.connect_timeout = std::chrono::milliseconds(1000);
    cfg.connection.command_timeout = std::chrono::milliseconds(2000);
    // Without a certificate, and with one the proxy's CA did not sign: refused.
    {
        client::sync_client none(cfg);
        EXPECT_FALSE(none.command("PING").has_value());
        auto other = cfg;
        other.connection.tls.cert_file = pki_.file("other.crt");
        other.connection.tls.key_file = pki_.file("other.key");
        client::sync_client wrong(other);
        EXPECT_FALSE(wrong.command("PING").has_value());
    }
    auto good = cfg;
    good.connection.tls.cert_file = pki_.file("client.crt");
    good.connection.tls.key_file = pki_.file("client.key");
    client::sync_client c(good);
    auto r = c.command("SET", "mtls", "yes");
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(primary_.cli({"GET", "mtls"}), "yes");
    EXPECT_TRUE(converged());
}

TEST_F(proxy_tls, backends_that_require_client_certificates) {
    const auto tls_port = free_port();
    auto opts = tls_server_options(tls_port);
    for (auto& [k, v] : opts.config)
        if (k == "tls-auth-clients")
            v = "yes";
    redis_server mtls_primary(opts);
    const auto with_cert = [&](proxy::proxy_config& c) {
        c.primary.connection.port = tls_port;
        c.primary.connection.tls.enabled = true;
        c.primary.connection.tls.ca_file = pki_.file("ca.crt");
        c.primary.connection.tls.cert_file = pki_.file("client.crt");
        c.primary.connection.tls.key_file = pki_.file("client.key");
    };
    // The server refuses connections without a certificate its CA signed (tls-auth-clients
    // yes), so every answer below proves that the proxy presented one on that path.
    start(proxy::mode::dual_write, with_cert);
    client::sync_client c(client_config());
    auto r = c.command("SET", "k", "v");
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->str(), "OK");  // the raw forwarding path
    EXPECT_EQ(mtls_primary.cli({"GET", "k"}), "v");
    // The follower read the reply: same path (applied asynchronously).
    EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "k"}) == "v"; }));
    // The decoded path (SYNC reads the primary through the client library) presents it too.
    mtls_primary.cli({"SET", "old", "1"});
    raw_conn admin(proxy_->port());
    EXPECT_EQ(admin.call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "old"}) == "1"; }));
}

}  // namespace
}  // namespace respite::test
