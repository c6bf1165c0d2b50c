#include "server/app/options.h"

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gtest/gtest.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(int64_t, max_message_bytes);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(double, drain_seconds);
ABSL_DECLARE_FLAG(bool, auth_disabled);
ABSL_DECLARE_FLAG(std::string, auth_tokens_file);
ABSL_DECLARE_FLAG(int, max_streams_per_client);
ABSL_DECLARE_FLAG(int, max_batch_size);
ABSL_DECLARE_FLAG(int, max_background_batch_size);
ABSL_DECLARE_FLAG(std::string, keep_run_checkpoints);
ABSL_DECLARE_FLAG(std::string, failed_run_retention);
ABSL_DECLARE_FLAG(std::string, retention_sweep_interval);
ABSL_DECLARE_FLAG(std::string, disk_usage_interval);
ABSL_DECLARE_FLAG(int64_t, max_dataset_bytes);
ABSL_DECLARE_FLAG(std::string, precision);
ABSL_DECLARE_FLAG(double, bf16_max_iou_drop);
ABSL_DECLARE_FLAG(std::string, tensor_allocator);
ABSL_DECLARE_FLAG(bool, bf16);
ABSL_DECLARE_FLAG(std::string, roles);
ABSL_DECLARE_FLAG(std::string, database);
ABSL_DECLARE_FLAG(int, job_lease_seconds);
ABSL_DECLARE_FLAG(int, registry_sync_seconds);

namespace segserve::app {
namespace {

class OptionsTest : public ::testing::Test {
 protected:
  // Every test starts from the defaults, plus the one choice segserve insists on.
  OptionsTest() { absl::SetFlag(&FLAGS_auth_disabled, true); }
  absl::FlagSaver saver_;
};

TEST_F(OptionsTest, AuthMustBeChosenExplicitlyAndOnlyOnce) {
  absl::SetFlag(&FLAGS_auth_disabled, false);
  auto neither = OptionsFromFlags();
  ASSERT_EQ(neither.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(neither.status().message().find("--auth_tokens_file"), std::string::npos);
  EXPECT_NE(neither.status().message().find("--auth_disabled"), std::string::npos);
  absl::SetFlag(&FLAGS_auth_tokens_file, std::string("/etc/segserve/tokens"));
  auto tokens = OptionsFromFlags();
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->auth_tokens_file, "/etc/segserve/tokens");
  EXPECT_FALSE(tokens->auth_disabled);
  absl::SetFlag(&FLAGS_auth_disabled, true);
  EXPECT_EQ(OptionsFromFlags().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OptionsTest, DefaultsAreTheDocumentedOnes) {
  auto options = OptionsFromFlags();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->listen_address, "0.0.0.0:50051");
  EXPECT_EQ(options->metrics_address, "0.0.0.0:9090");
  EXPECT_EQ(options->data_dir, "./var");
  EXPECT_EQ(options->device, "cpu");
  EXPECT_EQ(options->max_message_bytes, 64ll << 20);
  EXPECT_GE(options->intra_op_threads, 1);
  EXPECT_EQ(options->log_level, common::LogLevel::kInfo);
  EXPECT_EQ(options->max_batch_size, 8);
  EXPECT_EQ(options->max_background_batch_size, 1);
  EXPECT_EQ(options->max_dataset_bytes, 2ll << 30);
  EXPECT_TRUE(options->serve_role);
  EXPECT_TRUE(options->train_role);
  EXPECT_EQ(options->job_lease_seconds, 30);
  EXPECT_EQ(options->registry_sync_seconds, 2);
}

TEST_F(OptionsTest, RolesAreServeTrainOrBothAndServeOnlyNeedsADatabase) {
  absl::SetFlag(&FLAGS_database, std::string("postgresql://segserve@db/segserve"));
  absl::SetFlag(&FLAGS_roles, std::string("serve"));
  auto serve = OptionsFromFlags();
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_TRUE(serve->serve_role);
  EXPECT_FALSE(serve->train_role);
  absl::SetFlag(&FLAGS_roles, std::string("train"));
  auto train = OptionsFromFlags();
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_FALSE(train->serve_role);
  EXPECT_TRUE(train->train_role);
  absl::SetFlag(&FLAGS_roles, std::string("train,serve"));
  EXPECT_TRUE(OptionsFromFlags()->serve_role);
}

TEST_F(OptionsTest, RetentionFlagsDefaultParseAndNameTheirLimits) {
  auto defaults = OptionsFromFlags();
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->keep_run_checkpoints, lifecycle::KeepCheckpoints::kNone);
  EXPECT_EQ(defaults->failed_run_retention, std::chrono::hours(24 * 7));
  EXPECT_EQ(defaults->retention_sweep_interval, std::chrono::hours(1));
  EXPECT_EQ(defaults->disk_usage_interval, std::chrono::seconds(60));
  absl::SetFlag(&FLAGS_keep_run_checkpoints, std::string("best"));
  absl::SetFlag(&FLAGS_failed_run_retention, std::string("36h"));
  auto set = OptionsFromFlags();
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->keep_run_checkpoints, lifecycle::KeepCheckpoints::kBest);
  EXPECT_EQ(set->failed_run_retention, std::chrono::hours(36));
  absl::SetFlag(&FLAGS_keep_run_checkpoints, std::string("latest"));
  auto bad_keep = OptionsFromFlags();
  EXPECT_EQ(bad_keep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_keep.status().message().find("--keep_run_checkpoints"), std::string::npos);
  absl::SetFlag(&FLAGS_keep_run_checkpoints, std::string("none"));
  absl::SetFlag(&FLAGS_disk_usage_interval, std::string("0s"));
  auto bad_interval = OptionsFromFlags();
  EXPECT_EQ(bad_interval.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_interval.status().message().find("--disk_usage_interval"), std::string::npos);
  absl::SetFlag(&FLAGS_disk_usage_interval, std::string("60s"));
  absl::SetFlag(&FLAGS_failed_run_retention, std::string("a week"));
  EXPECT_EQ(OptionsFromFlags().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OptionsTest, AcceptsCudaDevicesAndExplicitThreads) {
  absl::SetFlag(&FLAGS_device, "cuda:1");
  absl::SetFlag(&FLAGS_threads, 2);
  absl::SetFlag(&FLAGS_log_level, "DEBUG");
  auto options = OptionsFromFlags();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->device, "cuda:1");
  EXPECT_EQ(options->intra_op_threads, 2);
  EXPECT_EQ(options->log_level, common::LogLevel::kDebug);
}

TEST_F(OptionsTest, PrecisionDefaultsToFp32AndBf16IsItsOldSpelling) {
  auto defaults = OptionsFromFlags();
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->precision, registry::PrecisionMode::kFp32);
  EXPECT_DOUBLE_EQ(defaults->bf16_max_iou_drop, 0.01);
  EXPECT_TRUE(defaults->retained_tensor_heap);
  absl::SetFlag(&FLAGS_precision, std::string("auto"));
  absl::SetFlag(&FLAGS_bf16_max_iou_drop, 0.02);
  auto set = OptionsFromFlags();
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->precision, registry::PrecisionMode::kAuto);
  EXPECT_DOUBLE_EQ(set->bf16_max_iou_drop, 0.02);
  absl::SetFlag(&FLAGS_precision, std::string("fp32"));
  absl::SetFlag(&FLAGS_bf16, true);
  auto old = OptionsFromFlags();
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->precision, registry::PrecisionMode::kBf16);
}

struct BadFlagCase {
  const char* name;
  void (*set)();
  const char* expected_text;
};

class BadOptionsTest : public OptionsTest, public ::testing::WithParamInterface<BadFlagCase> {};

TEST_P(BadOptionsTest, IsRefusedNamingTheFlag) {
  GetParam().set();
  auto options = OptionsFromFlags();
  ASSERT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(options.status().message().find(GetParam().expected_text), std::string::npos)
      << options.status();
}

INSTANTIATE_TEST_SUITE_P(
    Flags, BadOptionsTest,
    ::testing::Values(
        BadFlagCase{"ListenWithoutPort", [] { absl::SetFlag(&FLAGS_listen, "localhost"); },
                    "--listen"},
        BadFlagCase{"PortOutOfRange", [] { absl::SetFlag(&FLAGS_metrics_listen, "h:70000"); },
                    "--metrics_listen"},
        BadFlagCase{"UnknownDevice", [] { absl::SetFlag(&FLAGS_device, "tpu"); }, "--device"},
        BadFlagCase{"NegativeCudaIndex", [] { absl::SetFlag(&FLAGS_device, "cuda:-1"); },
                    "--device"},
        BadFlagCase{"TooManyThreads", [] { absl::SetFlag(&FLAGS_threads, 1000); }, "--threads"},
        BadFlagCase{"TinyMessages",
                    [] { absl::SetFlag(&FLAGS_max_message_bytes, int64_t{1000}); },
                    "--max_message_bytes"},
        BadFlagCase{"TinyDatasetLimit",
                    [] { absl::SetFlag(&FLAGS_max_dataset_bytes, int64_t{100}); },
                    "--max_dataset_bytes: must be 1024.."},
        BadFlagCase{"UnknownLogLevel", [] { absl::SetFlag(&FLAGS_log_level, "loud"); },
                    "--log_level"},
        BadFlagCase{"NegativeDrain", [] { absl::SetFlag(&FLAGS_drain_seconds, -1.0); },
                    "--drain_seconds"},
        BadFlagCase{"NoStreams", [] { absl::SetFlag(&FLAGS_max_streams_per_client, 0); },
                    "--max_streams_per_client"},
        BadFlagCase{"UnknownPrecision",
                    [] { absl::SetFlag(&FLAGS_precision, std::string("fp16")); },
                    "--precision: must be fp32, bf16 or auto, got 'fp16'"},
        BadFlagCase{"IouDropAboveOne", [] { absl::SetFlag(&FLAGS_bf16_max_iou_drop, 1.5); },
                    "--bf16_max_iou_drop: must be 0..1"},
        BadFlagCase{"UnknownTensorAllocator",
                    [] { absl::SetFlag(&FLAGS_tensor_allocator, std::string("jemalloc")); },
                    "--tensor_allocator: must be retained or libtorch, not \"jemalloc\""},
        BadFlagCase{"Bf16WithAuto",
                    [] {
                      absl::SetFlag(&FLAGS_bf16, true);
                      absl::SetFlag(&FLAGS_precision, std::string("auto"));
                    },
                    "--bf16: conflicts with --precision=auto"},
        BadFlagCase{"UnknownRole", [] { absl::SetFlag(&FLAGS_roles, std::string("serve,gpu")); },
                    "--roles: expected a comma-separated list of serve and train, got 'serve,gpu'"},
        BadFlagCase{"NoRole", [] { absl::SetFlag(&FLAGS_roles, std::string("")); },
                    "--roles: expected"},
        BadFlagCase{"ServeOnlyWithoutDatabase",
                    [] { absl::SetFlag(&FLAGS_roles, std::string("serve")); },
                    "--roles: a replica without the train role needs --database"},
        BadFlagCase{"ShortLease", [] { absl::SetFlag(&FLAGS_job_lease_seconds, 1); },
                    "--job_lease_seconds: must be 3..3600, got 1"},
        BadFlagCase{"NegativeRegistrySync",
                    [] { absl::SetFlag(&FLAGS_registry_sync_seconds, -1); },
                    "--registry_sync_seconds: must be 0..3600"},
        BadFlagCase{"BackgroundBatchAboveBatch",
                    [] {
                      absl::SetFlag(&FLAGS_max_batch_size, 4);
                      absl::SetFlag(&FLAGS_max_background_batch_size, 5);
                    },
                    "--max_background_batch_size: must be 1..4"}),
    [](const ::testing::TestParamInfo<BadFlagCase>& info) { return info.param.name; });

}  // namespace
}  // namespace segserve::app
