"""The supervisor: the launcher that starts, watches and stops a stack (:mod:`.launcher`), its
view of each process (:mod:`.child`), the control channel both ends speak (:mod:`.control`), the
launchers of a multi-host stack (:mod:`.multihost`, :mod:`.peering`) and the reaper that outlives
a killed launcher (:mod:`.reaper`)."""
