// The controller quorum as the Java AdminClient sees it (describeMetadataQuorum, the call behind
// `kafka-metadata-quorum describe --status`). Talks straight to the controllers
// (bootstrap.controllers, KIP-919) so that it answers while brokers are down.
// Usage: Quorum HOST:CPORT[,HOST:CPORT...]
// Prints one line: "leader=ID epoch=E hw=H voters=ID:LEO,... observers=ID:LEO,...";
// exits 1 with "error CLASS: message" when the call fails within 10 s.

import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.*;

public class Quorum {
    static String replicas(List<QuorumInfo.ReplicaState> states) {
        return states.stream()
                .sorted(Comparator.comparingInt(QuorumInfo.ReplicaState::replicaId))
                .map(s -> s.replicaId() + ":" + s.logEndOffset())
                .collect(Collectors.joining(","));
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_CONTROLLERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        try (Admin admin = Admin.create(props)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(10, TimeUnit.SECONDS);
            System.out.println("leader=" + q.leaderId() + " epoch=" + q.leaderEpoch()
                    + " hw=" + q.highWatermark() + " voters=" + replicas(q.voters())
                    + " observers=" + replicas(q.observers()));
        } catch (Exception e) {
            Throwable c = e.getCause() != null ? e.getCause() : e;
            System.out.println("error " + c.getClass().getSimpleName() + ": " + c.getMessage());
            System.exit(1);
        }
    }
}
