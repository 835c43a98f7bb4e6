// TLS against a real redis-server with tls-port: commands and pub/sub over TLS, certificate
// verification failures end in a clear error instead of a hang.
#include <cstdlib>
#include <filesystem>

#include <asio/use_future.hpp>

#include "common.hpp"
#include "support/test_pki.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

namespace {

class tls : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        pki_ = new test_pki();
        tls_port_ = free_port();
        redis_server_options o;
        o.config = {{"tls-port", std::to_string(tls_port_)},
                    {"tls-cert-file", pki_->file("server.crt")},
                    {"tls-key-file", pki_->file("server.key")},
                    {"tls-ca-cert-file", pki_->file("ca.crt")},
                    {"tls-auth-clients", "no"}};
        server_ = new redis_server(o);
    }
    static void TearDownTestSuite() {
        delete server_;
        delete pki_;
    }
    client::client_config tls_config(const std::string& ca) {
        auto cfg = config_for(*server_);
        cfg.connection.port = tls_port_;
        cfg.connection.tls.enabled = true;
        cfg.connection.tls.ca_file = ca;
        cfg.connection.tls.server_name = "localhost";
        cfg.connection.connect_timeout = 2s;
        return cfg;
    }
    static test_pki* pki_;
    static redis_server* server_;
    static std::uint16_t tls_port_;
};
test_pki* tls::pki_ = nullptr;
redis_server* tls::server_ = nullptr;
std::uint16_t tls::tls_port_ = 0;

}  // namespace

TEST_F(tls, commands_pipelines_and_pubsub_over_tls) {
    client::client c(tls_config(pki_->file("ca.crt")));
    auto r = get(c.async_command(cmd("SET", "over-tls", "yes"), asio::use_future));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(server_->cli({"GET", "over-tls"}), "yes");
    client::request p;
    for (int i = 0; i < 10000; ++i)
        p.push("INCR", "tls-counter");
    auto rs = get(c.async_exec(std::move(p), asio::use_future));
    ASSERT_TRUE(rs);
    EXPECT_EQ(rs->back().integer(), 10000);
    ASSERT_TRUE(
        get(c.async_subscribe(client::subscription_kind::channel, {"tls-news"}, asio::use_future)));
    server_->cli({"PUBLISH", "tls-news", "secure"});
    auto m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "secure");
}

TEST_F(tls, untrusted_certificate_fails_clearly) {
    auto cfg = tls_config(pki_->file("other.crt"));
    cfg.connection.command_timeout = 1s;
    client::client c(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(c.async_command(cmd("PING"), asio::use_future));
    ASSERT_FALSE(r);
    // Fails at once with the TLS error itself, not after the command timeout.
    EXPECT_NE(r.error().message().find("certificate verify failed"), std::string::npos)
        << r.error().message();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
}

TEST_F(tls, wrong_server_name_fails_verification) {
    auto cfg = tls_config(pki_->file("ca.crt"));
    cfg.connection.tls.server_name = "not-this-host";
    cfg.connection.command_timeout = 1s;
    client::client c(cfg);
    auto r = get(c.async_command(cmd("PING"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("certificate verify failed"), std::string::npos)
        << r.error().message();
}
