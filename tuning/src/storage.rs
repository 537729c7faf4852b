//! From a data directory to its mount and block device: `/proc/self/mountinfo` gives the
//! mount and its `major:minor`; `/sys/dev/block/<major:minor>` names the device, and a
//! partition's queue settings live on its parent disk.

use std::path::{Component, Path, PathBuf};

use crate::host::Host;
use crate::Error;

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,noatime`).
    pub mount_options: String,
    pub fs_type: String,
    /// The mount source, e.g. `/dev/nvme0n1p2`.
    pub source: String,
    /// Filesystem-specific options (`rw,discard,data=ordered`).
    pub super_options: String,
}

impl Mount {
    /// Mount and superblock options together, each once, in order.
    pub fn all_options(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for opt in self
            .mount_options
            .split(',')
            .chain(self.super_options.split(','))
        {
            if !opt.is_empty() && !all.iter().any(|o| o == opt) {
                all.push(opt.to_string());
            }
        }
        all
    }
}

/// A block device and the disk whose queue it uses (itself, or a partition's parent).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockDevice {
    /// e.g. `nvme0n1p2` or `vda`.
    pub name: String,
    /// e.g. `nvme0n1`; equal to `name` for a whole disk.
    pub disk: String,
}

impl BlockDevice {
    /// `/sys/block/<disk>/queue/<file>`.
    pub fn queue_path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("/sys/block/{}/queue/{file}", self.disk))
    }

    pub fn is_nvme(&self) -> bool {
        self.disk.starts_with("nvme")
    }
}

/// The data directory if it exists, else its nearest existing parent, made absolute.
/// A path that exists but is not a directory is an error: the broker could not use it.
pub fn existing_dir(data_dir: &Path) -> Result<PathBuf, Error> {
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(Error::NotADirectory {
            path: data_dir.to_path_buf(),
        });
    }
    let absolute = std::path::absolute(data_dir)
        .map_err(|e| Error::io(format!("{}", data_dir.display()), e))?;
    let mut dir = absolute.as_path();
    loop {
        if dir.is_dir() {
            return dir
                .canonicalize()
                .map_err(|e| Error::io(format!("{}", dir.display()), e));
        }
        dir = dir
            .parent()
            .ok_or_else(|| Error::usage(format!("{}: no existing parent", data_dir.display())))?;
    }
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mount_line).collect()
}

/// The mount holding `path` (absolute, canonical): the longest mount point that contains it,
/// the last such line winning because later mounts stack on earlier ones.
pub fn mount_of(mounts: &[Mount], path: &Path) -> Option<Mount> {
    let mut best: Option<&Mount> = None;
    for mount in mounts {
        if !path.starts_with(&mount.mount_point) {
            continue;
        }
        let depth = mount.mount_point.components().count();
        let best_depth = best.map_or(0, |b| b.mount_point.components().count());
        if best.is_none() || depth >= best_depth {
            best = Some(mount);
        }
    }
    best.cloned()
}

/// The block device behind a mount: by `major:minor`, else (btrfs, which reports an anonymous
/// device number) by the mount source's name under `/sys/class/block`.
pub fn block_device(host: &Host, mount: &Mount) -> Option<BlockDevice> {
    let by_number = format!("/sys/dev/block/{}:{}", mount.major, mount.minor);
    if mount.major != 0 && host.exists(&by_number) {
        return device_at(host, &by_number);
    }
    let name = mount.source.strip_prefix("/dev/")?.rsplit('/').next()?;
    let by_name = format!("/sys/class/block/{name}");
    host.exists(&by_name).then(|| device_at(host, &by_name))?
}

/// Looks up the mount and device of a data directory in one go.
pub fn locate(host: &Host, dir: &Path) -> (Option<Mount>, Option<BlockDevice>) {
    let mounts = host
        .read("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    let mount = mount_of(&mounts, dir);
    let device = mount.as_ref().and_then(|m| block_device(host, m));
    (mount, device)
}

fn device_at(host: &Host, link: &str) -> Option<BlockDevice> {
    let target = host.read_link(link)?;
    let name = file_name(&target)?;
    let disk = if host.exists(format!("{link}/partition")) {
        file_name(target.parent()?)?
    } else {
        name.clone()
    };
    Some(BlockDevice { name, disk })
}

fn file_name(path: &Path) -> Option<String> {
    match path.components().next_back()? {
        Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
        _ => None,
    }
}

fn parse_mount_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let right: Vec<&str> = right.split(' ').collect();
    if left.len() < 6 || right.len() < 3 {
        return None;
    }
    let (major, minor) = left[2].split_once(':')?;
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: PathBuf::from(unescape(left[4])),
        mount_options: left[5].to_string(),
        fs_type: right[0].to_string(),
        source: unescape(right[1]),
        super_options: right[2].to_string(),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
40 27 259:3 / /var/lib/millrace rw,noatime shared:1 - xfs /dev/nvme1n1 rw,attr2,inode64
41 27 0:45 / /mnt/my\\040disk rw - tmpfs tmpfs rw,size=1024k
";

    #[test]
    fn finds_the_deepest_mount() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        let m = mount_of(&mounts, Path::new("/var/lib/millrace/data")).unwrap();
        assert_eq!((m.major, m.minor, m.fs_type.as_str()), (259, 3, "xfs"));
        assert_eq!(m.all_options(), ["rw", "noatime", "attr2", "inode64"]);
        let m = mount_of(&mounts, Path::new("/var/lib/millrace2")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/"));
        let m = mount_of(&mounts, Path::new("/mnt/my disk/x")).unwrap();
        assert_eq!(m.fs_type, "tmpfs");
    }

    #[test]
    fn partitions_use_their_parent_disk() {
        let root = std::env::temp_dir().join(format!("millrace-tune-blk-{}", std::process::id()));
        let dev = root.join("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p2");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("partition"), "2\n").unwrap();
        std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p2",
            root.join("sys/dev/block/259:2"),
        )
        .unwrap();
        let host = Host::under(&root);
        let mounts = parse_mountinfo(MOUNTINFO);
        let m = mount_of(&mounts, Path::new("/home")).unwrap();
        let d = block_device(&host, &m).unwrap();
        assert_eq!((d.name.as_str(), d.disk.as_str()), ("nvme0n1p2", "nvme0n1"));
        assert!(d.is_nvme());
        assert_eq!(
            d.queue_path("scheduler"),
            PathBuf::from("/sys/block/nvme0n1/queue/scheduler")
        );
        let tmp = mount_of(&mounts, Path::new("/mnt/my disk")).unwrap();
        assert_eq!(block_device(&host, &tmp), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let file = std::env::temp_dir().join(format!("millrace-tune-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            existing_dir(&file),
            Err(Error::NotADirectory { .. })
        ));
        let missing = file.with_extension("missing").join("deeper");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            existing_dir(&missing).unwrap(),
            std::env::temp_dir().canonicalize().unwrap()
        );
    }
}
