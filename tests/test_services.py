from spreadbus.services import SERVICES, STOP_ORDER, ServiceSpec


def test_a_service_whose_package_is_missing_is_not_built() -> None:
    assert not ServiceSpec("ghost", "spreadbus.no_such_package.service", "x").built
    assert SERVICES["gateway"].built


def test_every_service_has_a_stop_position() -> None:
    assert sorted(STOP_ORDER) == sorted(SERVICES)
    assert STOP_ORDER[-1] == "logger"  # the logger hears everyone else stop
