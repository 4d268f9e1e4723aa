"""Shared fixtures for the bench's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from needed_tools import pytest_terminal_summary  # noqa: F401 - the skips for a missing tool, counted

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The published test vectors beside the checkout (`../shared/vectors`)."""
    if not VECTORS.is_dir():
        pytest.fail(f"published vectors not found at {VECTORS}")
    return VECTORS


# Scheduling on `make test` (`pytest -n 2 --dist loadgroup --no-loadscope-reorder`). Each module
# whose tests share a module- or class-scoped fixture (a rig, a coordinator, a 1,000-meter
# campaign) is one unit of work, so that its fixture is built once, on one worker; every other test
# is a unit of its own. Units are handed out longest first (their cost from COSTS, below), so both
# workers stay busy to the end instead of one finishing alone on a minute-long test.
# COSTS: seconds on this project's 2-core reference machine (`pytest -n 2 --durations=0`), by node
# id prefix, the longest prefix winning; only the order they give matters, so a rough figure will do.
COSTS: dict[str, float] = {
    "tests/install/test_wheel.py::test_the_installed_bench_stands_alone": 149,
    "tests/gateway/test_dcc_clients_node.py::test_a_node_user_sends_and_receives_through_the_gateway": 56,
    "tests/testing/test_suite_can_fail.py::test_each_fault_profile_is_caught": 51,
    "tests/testing/test_rig_scope.py::test_the_pi_serial_rig_passes_on_emulated_meters": 51,
    "tests/lab/test_place.py::test_a_rig_up_stopped_while_queued_leaves_no_reservation": 43,
    "tests/link/test_ser2net_suite.py::test_the_whole_suite_passes_over_rfc2217": 43,
    "tests/campaign/test_fleet_accounting.py::test_a_rig_killed_mid_campaign_accounts_for_every_message": 27,
    "tests/report/test_conformance.py::test_passing_and_failing_reports_in_a_real_browser": 27,
    "tests/meter/test_power_cut.py::test_power_cuts_at_random_points": 27,
    "tests/gateway/test_suite_over_http.py::test_the_suite_passes_with_every_party_going_through_the_gateway": 27,
    "tests/link/test_ser2net_suite.py::test_r1_passes_over_raw_tcp": 24,
    "tests/lab/test_suite_on_place.py::test_the_suite_passes_on_a_locked_place_which_is_free_afterwards": 23,
    "tests/testing/test_firmware_under_test.py::test_the_suite_runs_the_makers_firmware_on_emulated_meters": 23,
    "tests/fuzz/test_cli.py::test_a_finding_and_its_replay": 22,
    "tests/lab/test_parallel.py::test_parallel_2_over_two_places_gives_one_verdict_record_and_junit": 22,
    "tests/testing/test_suite_can_fail.py::test_a_correct_meter_passes_the_whole_suite": 22,
    "tests/lab/test_place.py::test_a_run_stopped_with_sigterm_releases_the_place": 21,
    "tests/gateway/test_dcc_clients_signatures.py::test_the_tool_validates_every_response_and_alert_the_shim_writes": 21,
    "tests/testing/test_run_verdicts.py::test_a_labs_own_suite_is_judged_on_what_its_tests_cover": 17,
    "tests/lab/test_place.py::test_a_second_run_waits_for_the_holder_then_passes": 16,
    "tests/rig/test_lifecycle.py::test_rig_up_serves_other_terminals_until_rig_down": 16,
    "tests/fuzz/test_cli.py::test_bad_options_are_one_line": 15,
    "tests/testing/test_rig_scope.py::test_an_esme_only_rig_passes_on_emulated_meters": 14,
    "tests/gateway/test_dcc_clients_signatures.py::test_the_tool_validates_the_s1sp_signature_as_a_user_checks_it": 14,
    "tests/gateway/test_rig_table.py::test_rig_up_serves_the_table": 13,
    "tests/gateway/test_serve.py::test_serve_answers_duis_on_the_embedded_rig_from_an_empty_directory": 13,
    "tests/cli/test_requests_follow_the_rig.py::test_requests_at_a_running_rig_take_its_parts_and_roles": 12,
    "tests/campaign/test_fleet_accounting.py::test_a_receiver_down_mid_campaign_still_gets_every_message": 12,
    "tests/wire/test_fuzz.py::test_scapy_dissection_and_agreement_with_the_fast_codec": 12,
    "tests/cli/test_capture_text.py::test_text_decode_reads_every_capture_of_a_run": 12,
    "tests/campaign/test_kills.py::test_a_rig_killed_mid_campaign_leaves_every_message_accounted_for": 11,
    "tests/rig/test_dead_meter.py::test_bench_rig_keeps_serving_shows_down_restarts_and_stops_whatever_requests_do": 11,
    "tests/lab/test_place.py::test_a_killed_run_leaves_a_lock_that_bench_lab_release_clears": 10,
    "tests/fuzz/test_campaign.py::test_each_fault_is_found_minimised_and_replayed": 9.7,
    "tests/fuzz/test_campaign.py::test_a_sleepy_gas_meter": 9.7,
    "tests/link/test_ser2net_suite.py::test_a_server_gone_mid_run_skips_the_remaining_tests_with_its_line": 9.5,
    "tests/campaign/test_fleet_accounting.py::test_a_meter_host_killed_mid_campaign_resumes_and_every_message_is_there": 9.4,
    "tests/rig/test_lifecycle.py::test_a_meter_that_dies_mid_run_skips_only_its_tests_with_the_cause": 7.5,
    "tests/rig/test_duis_schema_optional.py::test_bench_run_says_it_once_in_the_terminal_and_in_record_json": 7.1,
    "tests/rig/test_rig_down.py::test_rig_down_stops_a_rig_that_answers_nothing_and_ignores_sigterm": 7.1,
    "tests/gateway/test_dcc_clients_signatures.py::test_the_tool_validates_what_bench_duis_sign_signs": 6.9,
    "tests/testing/test_run_verdicts.py::test_the_plugin_takes_the_rig_from_bench_rig": 6.8,
    "tests/rig/test_lifecycle.py::test_a_silent_real_meter_breaks_the_rig_once_not_every_test": 6.5,
    "tests/gateway/test_dcc_clients_signatures.py::test_the_tool_validates_the_requests_the_cli_signs": 6.3,
    "tests/campaign/test_cli.py::test_a_campaign_that_differs_from_its_rig_fails_naming_the_device": 5.4,
    "tests/dcc/test_cli.py::test_injected_forgery_and_replay_are_refused_and_audited": 5.4,
    "tests/gateway/test_dcc_clients_zaz1.py::test_the_tool_s_built_in_keys_are_accepted_and_its_validate_finds_the_dsp": 5.3,
    "tests/gateway/test_dcc_clients_signatures.py::test_the_shim_accepts_what_the_tool_signed": 5.3,
    "tests/rig/test_dead_meter.py::test_the_dead_meters_tests_skip_with_the_cause_and_the_others_run": 5.2,
    "tests/rig/test_lifecycle.py::test_rig_comes_up_and_stops_cleanly_with_its_artefacts": 5.1,
    "tests/testing/test_run_verdicts.py::test_a_misspelt_requirement_is_refused_at_collection": 5.0,
    "tests/lab/test_rig_table.py::test_a_coordinator_that_is_down_is_one_line_naming_it": 4.9,
    "tests/hub/test_end_to_end.py::test_progress_is_reported_while_downloading": 4.7,
    "tests/fuzz/test_cli.py::test_a_campaign_on_the_default_rig": 4.6,
    "tests/smets1/test_hostile_meter.py::test_an_activation_the_meter_spoils_answers_activation_failure": 4.6,
    "tests/fuzz/test_cases.py::test_captured_traffic_is_mutated": 4.5,
    "tests/campaign/test_kills.py::test_a_meter_killed_mid_campaign_takes_up_its_download_and_lands": 4.4,
    "tests/smets1/test_hostile_meter.py::test_a_verification_the_meter_spoils_ends_in_n61_and_8f1c": 4.3,
    "tests/fuzz/test_cases.py::test_layers_take_turns_and_frames_fit_the_air": 4.2,
    "tests/meter/test_cli.py::test_bad_invocations_fail_with_one_line": 4.1,
    "tests/hub/test_end_to_end.py::test_wait_for_data_is_honoured": 4.0,
    "tests/duis/test_summary_fuzz.py::test_any_accepted_document_summarises_to_json": 3.8,
    "tests/rig/test_preflight.py::test_rig_check_rejects_what_rig_up_would": 3.8,
    "tests/rig/test_lifecycle.py::test_a_failing_link_is_named_and_stops_what_already_started": 3.8,
    "tests/gateway/test_dcc_clients_zaz1.py::test_without_the_import_the_same_documents_fail": 3.8,
    "tests/rig/test_lifecycle.py::test_killing_the_bench_leaves_no_meter_behind": 3.7,
    "tests/dcc/test_request_workers.py::test_a_decision_whose_answer_died_with_its_worker_is_e20": 3.7,
    "tests/fleet/test_fleet_processes.py::test_a_killed_host_is_restarted_and_its_meters_finish_the_campaign": 3.6,
    "tests/rig/test_lifecycle.py::test_run_json_summary_shape": 3.5,
    "tests/rig/test_rig_down.py::test_rig_down_without_a_rig_is_one_line": 3.4,
    "tests/hub/test_end_to_end.py::test_sleepy_gsme_download_ends_pending_with_signed_receipt": 3.4,
    "tests/duis/test_fuzz.py::test_verify_document_fuzz": 3.3,
    "tests/fuzz/test_oracle_checks.py::test_a_sleepy_meter_that_stops_waking_is_a_hang": 3.2,
    "tests/campaign/test_gateway_campaign.py::test_the_counts_add_up_to_the_fleet_and_match_the_declaration": 3.2,
    "tests/gateway/test_dcc_clients_zaz1.py::test_the_rsa_signs_with_its_own_key_through_the_tool": 3.2,
    "tests/hub/test_end_to_end.py::test_alerts_cross_a_lossy_link_exactly_once": 3.2,
    "tests/smets1/test_emulator.py::test_power_cut_mid_transfer_keeps_only_synced_blocks_and_resumes": 3.1,
    "tests/hub/test_end_to_end.py::test_wireshark_sees_aps_acknowledged_puts_and_no_default_response": 3.1,
    "tests/rig/test_dead_meter.py::test_a_dead_meter_is_down_the_others_served_and_it_restarts": 3.0,
    "tests/smets1/test_emulator.py::test_block_and_initiate_errors_are_refused": 3.0,
    "tests/hub/test_end_to_end.py::test_noisy_line_still_delivers_a_byte_exact_image": 2.9,
    "tests/wire/test_zigbee.py::test_scapy_and_fast_codec_agree": 2.9,
    "tests/rig/test_distribution_ends.py::test_an_esme_image_sent_to_a_gsme_ends_in_n61_with_the_reason_said_once": 2.9,
    "tests/dcc/test_durability.py::test_acknowledged_requests_survive_sigkill_of_concurrent_submitters": 2.9,
    "tests/dcc/test_cli.py::test_with_no_rig_a_request_fails_in_one_line_unless_local": 2.8,
    "tests/hub/test_aps_acks.py::test_a_command_whose_acknowledgement_was_lost_is_acted_on_once": 2.8,
    "tests/campaign/test_cli.py::test_no_rig_in_the_run_directory_is_one_line_and_exit_2": 2.8,
    "tests/smets1/test_cli.py::test_smets1_refuses_what_does_not_fit": 2.7,
    "tests/rig/test_lifecycle.py::test_the_plugin_starts_nothing_for_tests_that_need_no_rig": 2.7,
    "tests/wire/test_capture_decode.py::test_record_carries_every_field": 2.7,
    "tests/lab/test_rig_table.py::test_bench_rig_check_stays_offline": 2.7,
    "tests/hub/test_end_to_end.py::test_wireshark_dissects_the_capture": 2.6,
    "tests/lab/test_place.py::test_acquire_reads_ports_and_meters_and_release_frees_the_place": 2.6,
    "tests/wire/test_capture_decode.py::test_aps_acknowledgements_and_their_requests_round_trip": 2.6,
    "tests/fuzz/test_campaign.py::test_a_correct_meter_survives_a_campaign": 2.5,
    "tests/hub/test_end_to_end.py::test_frozen_meter_is_reported_stalled_then_resumes": 2.5,
    "tests/meter/test_download.py::test_download_resumes_after_power_cut": 2.5,
    "tests/gbcs/test_properties.py::test_gbt_round_trip_in_any_order_with_duplicates": 2.5,
    "tests/smets1/test_emulator.py::test_power_cut_during_activation_finishes_it_at_power_on": 2.5,
    "tests/dcc/test_request_workers.py::test_a_worker_sends_back_the_image_it_read_and_the_shim_distributes_those_bytes": 2.4,
    "tests/smets1/test_hostile_meter.py::test_a_delivery_the_meter_spoils_ends_in_n61": 2.4,
    "tests/rig/test_recovery.py::test_a_rigs_results_directory_is_owner_only": 2.3,
    "tests/rig/test_recovery.py::test_a_rig_started_on_the_database_closes_what_the_last_one_left": 2.3,
    "tests/smets1/test_capture.py::test_every_frame_both_ways_is_captured_and_decodes": 2.2,
    "tests/rig/test_lifecycle.py::test_bench_run_on_a_broken_rig_fails_with_the_original_error": 2.1,
    "tests/smets1/test_faults.py::test_fault_is_caught": 2.1,
    "tests/hub/test_properties.py::test_messages_cross_the_tunnel_whole_in_any_block_order": 2.1,
    "tests/dcc/test_signed_ahead.py::test_workers_sign_the_events_messages_and_the_shim_stores_the_same": 2.0,
    "tests/dcc/test_request_workers.py::test_workers_answer_audit_and_hand_over_as_the_shim_itself": 2.0,
    "tests/fuzz/test_oracle_checks.py::test_a_dead_meter_is_waited_for_a_moment_when_its_line_fails": 2.0,
}
DEFAULT_COST = 0.05  # a unit test


def cost(nodeid: str) -> float:
    """The expected seconds of one test: its longest prefix in COSTS, else DEFAULT_COST."""
    best = max((p for p in COSTS if nodeid.startswith(p)), key=len, default=None)
    return DEFAULT_COST if best is None else COSTS[best]


def _shares_a_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "class", "package")
               for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups it names the units by
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(module))
            units.setdefault(module, []).append(item)
        else:
            units.setdefault(item.nodeid, []).append(item)
    ordered = sorted(units.values(), key=lambda unit: -sum(cost(i.nodeid) for i in unit))
    items[:] = [item for unit in ordered for item in unit]  # sorted() is stable: ties keep order
