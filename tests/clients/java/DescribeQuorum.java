import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.QuorumInfo;

/**
 * Admin.describeMetadataQuorum through a broker (bootstrap.servers) or a controller
 * (bootstrap.controllers): prints one line, "leader=N epoch=E hw=H voters=id:end,...".
 *
 * Usage: DescribeQuorum (bootstrap.servers|bootstrap.controllers) host:port
 */
public class DescribeQuorum {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(args[0], args[1]);
        p.put("request.timeout.ms", "10000");
        p.put("default.api.timeout.ms", "30000");
        try (Admin admin = Admin.create(p)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(30, TimeUnit.SECONDS);
            String voters = q.voters().stream()
                .map(v -> v.replicaId() + ":" + v.logEndOffset())
                .collect(Collectors.joining(","));
            System.out.println("leader=" + q.leaderId() + " epoch=" + q.leaderEpoch()
                + " hw=" + q.highWatermark() + " voters=" + voters);
        }
    }
}
